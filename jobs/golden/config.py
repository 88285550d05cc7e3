"""Golden stage settings (conf/golden.yaml): survivorship, households, aggregates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from jobs.common.config import Problem, Strict, check, is_invalid

SURVIVORSHIP_RULES = ("source_trust", "most_recent", "most_frequent", "most_complete", "first_non_null")

SurvivorshipRule = Literal["source_trust", "most_recent", "most_frequent", "most_complete", "first_non_null"]

# Attributes that survive together from one record, so a profile never mixes two names or two
# addresses. The record is chosen by the rule of the group's anchor attribute (first name below);
# the other members may only repeat that rule (jobs/golden/survivorship.py).
SURVIVORSHIP_GROUPS: dict[str, tuple[str, ...]] = {
    "name": ("family_name", "given_name", "initials", "name_particle", "full_name"),
    "address": ("postcode", "street", "house_number", "house_number_suffix", "city", "country"),
}


class HouseholdConfig(Strict):
    """Persons at one address (normalised postcode, house number, suffix, country) form a household."""

    enabled: bool = Field(True, description="derive households; false: every household_id is null")
    same_family_name: bool = Field(False, description="also require the same family name")
    max_size: int = Field(12, ge=2, description="larger address groups are not households (care homes, dorms)")


class RfmConfig(Strict):
    """Score thresholds, each list ascending (jobs/golden/profiles.py ``rfm_scores``).

    recency: days since the last order or receipt <= recency_days[0] -> 5, ... <= [3] -> 2, else 1;
    frequency (orders + receipts) and monetary (total revenue) >= [3] -> 5, ... >= [0] -> 2, else 1.
    """

    recency_days: list[int] = Field(
        default_factory=lambda: [30, 90, 180, 365],
        min_length=4,
        max_length=4,
        description="days since the last order or receipt, ascending: <= [0] scores 5, ... <= [3] 2, else 1",
    )
    frequency_orders: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8],
        min_length=4,
        max_length=4,
        description="orders + receipts, ascending: >= [3] scores 5, ... >= [0] 2, else 1",
    )
    monetary_eur: list[float] = Field(
        default_factory=lambda: [50, 150, 400, 1000],
        min_length=4,
        max_length=4,
        description="total revenue of orders and receipts, ascending: >= [3] scores 5, ... >= [0] 2, else 1",
    )

    @check
    def _ascending(self) -> Iterator[Problem]:
        for name in ("recency_days", "frequency_orders", "monetary_eur"):
            v = getattr(self, name)
            if is_invalid(v):
                continue
            for i in range(1, len(v)):
                if v[i - 1] >= v[i]:
                    yield Problem(
                        f"{name}[{i}]", v[i], f"more than {name}[{i - 1}] ({v[i - 1]}): thresholds are strictly ascending"
                    )


class GoldenConfig(Strict):
    """Golden profiles: which record's value each attribute keeps, households, RFM scores."""

    default_rule: SurvivorshipRule = Field(
        "source_trust", description="survivorship rule of the attributes without an entry in survivorship"
    )
    survivorship: dict[str, SurvivorshipRule] = Field(
        description="profile attribute -> the rule picking the record whose value the profile keeps "
        "(conf/golden.yaml explains the rules); the name and the address survive as a whole",
        default_factory=lambda: {
            "email": "most_recent",
            "phone": "most_recent",
            "street": "most_recent",
            "house_number": "most_recent",
            "house_number_suffix": "most_recent",
            "postcode": "most_recent",
            "city": "most_recent",
            "country": "most_recent",
            "birth_date": "most_frequent",
            "given_name": "source_trust",
            "family_name": "source_trust",
        }
    )
    households: HouseholdConfig = Field(default_factory=HouseholdConfig, description="households: persons at one address")
    rfm: RfmConfig = Field(default_factory=RfmConfig, description="RFM score thresholds (5 = best)")

    def rule_for(self, attribute: str) -> SurvivorshipRule:
        """The configured rule of an attribute, else ``default_rule``."""
        return self.survivorship.get(attribute, self.default_rule)

    def semantic_problems(self, root: Any) -> list[tuple[str, Any, str]]:
        """The load-time checks as (path from the config root, value given, what was expected)."""
        return [(f"golden.{p.path}", p.given, p.expected) for p in self._known_attributes()] + [
            (f"golden.{p.path}", p.given, p.expected) for p in self._group_problems()
        ]

    @check(at_load=True)
    def _known_attributes(self) -> list[Problem]:
        from jobs.common.schemas import SURVIVING_ATTRIBUTES

        return [
            Problem(
                f"survivorship.{attr}", attr, f"one of the profile attributes: {', '.join(SURVIVING_ATTRIBUTES)}",
                f"key {attr!r}",
            )
            for attr in self.survivorship
            if attr not in SURVIVING_ATTRIBUTES
        ]

    @check(at_load=True)
    def _group_problems(self) -> list[Problem]:
        """A group member configured with another rule than its anchor would be silently ignored."""
        problems: list[Problem] = []
        for group, (anchor, *members) in SURVIVORSHIP_GROUPS.items():
            anchor_rule = self.rule_for(anchor)
            for attr in members:
                rule = self.survivorship.get(attr)
                if rule is not None and rule != anchor_rule:
                    problems.append(
                        Problem(
                            f"survivorship.{attr}",
                            rule,
                            f"{anchor_rule!r} (the rule of {anchor}) or no entry: the {group} survives as a "
                            f"whole from the record the {anchor} rule picks",
                        )
                    )
        return problems
