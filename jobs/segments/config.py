"""Segment definitions (conf/segments.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from jobs.common.config import Problem, Strict, check


class SegmentConfig(Strict):
    """One segment: a rule over golden.profiles, the consent it needs, its audience exports."""

    name: str = Field(
        ...,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="segment name (lower case) in segments.membership; rfm_* is reserved while rfm_micro_segments is on",
    )
    description: str = Field("", description="free text for people; the jobs do not read it")
    rule: str = Field(
        ..., min_length=1, description="condition over golden.profiles columns (docs/segment-rules.md), parsed, never run as SQL"
    )
    consent: Literal["email", "sms", "post", "phone"] | None = Field(
        None, description="members also need this consent channel (consent_<channel> true); null: none needed"
    )
    exports: list[Literal["email_csv", "hashed_audience"]] = Field(
        default_factory=list,
        description="audience files written each run under export_dir: email_csv (addresses with e-mail consent, "
        "for an e-mail tool), hashed_audience (SHA-256 of e-mail and phone, for ad platforms)",
    )


class SegmentsConfig(Strict):
    """Segments evaluated on golden.profiles each run, with membership history and exports."""

    segments: list[SegmentConfig] = Field(default_factory=list, description="the rule segments, each a person's membership")
    rfm_micro_segments: bool = Field(
        True, description="also put every person with RFM scores in one rfm_* micro-segment (champions, at_risk, ...)"
    )
    export_dir: str = Field("exports", description="folder under lake.root for audience files")
    hashed_phone_format: Literal["e164", "digits"] = Field(
        "e164",
        description="phone normalisation before hashing in hashed_audience files: e164 keeps the '+' "
        "(Google Customer Match), digits drops it (Meta Custom Audiences)",
    )
    hashed_audience_consent: Literal["email", "sms", "post", "phone"] | None = Field(
        None,
        description="the consent channel whose statement covers matching with ad platforms; hashed_audience "
        "files hold only persons with that consent true (on top of the segment's own consent). golden.profiles "
        "has no advertising consent channel, so there is no default: a segment exporting hashed_audience "
        "while this is unset is a config error",
    )

    def semantic_problems(self, root: Any) -> list[tuple[str, Any, str]]:
        """The load-time checks as (path from the config root, value given, what was expected)."""
        from jobs.segments.rules import check_segments

        return check_segments(self)

    @check(at_load=True)
    def _rules_and_names(self) -> list[Problem]:
        """Rules parse against the golden profile schema; names are unique and not reserved."""
        return [
            Problem(path.removeprefix("segments."), given, expected)
            for path, given, expected in self.semantic_problems(None)
        ]
