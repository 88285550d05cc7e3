"""Segment definitions (conf/segments.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from jobs.common.config import Problem, Strict, check


class SegmentConfig(Strict):
    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    rule: str = Field(..., min_length=1)
    consent: Literal["email", "sms", "post", "phone"] | None = None
    exports: list[Literal["email_csv", "hashed_audience"]] = Field(default_factory=list)


class SegmentsConfig(Strict):
    segments: list[SegmentConfig] = Field(default_factory=list)
    rfm_micro_segments: bool = True
    export_dir: str = Field("exports", description="folder under lake.root for audience files")
    hashed_phone_format: Literal["e164", "digits"] = Field(
        "e164",
        description="phone normalisation before hashing in hashed_audience files: e164 keeps the '+' "
        "(Google Customer Match), digits drops it (Meta Custom Audiences)",
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
