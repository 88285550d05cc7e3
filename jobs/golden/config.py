"""Golden stage settings (conf/golden.yaml): survivorship, households, aggregates."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from jobs.common.config import Strict

SURVIVORSHIP_RULES = ("source_trust", "most_recent", "most_frequent", "most_complete", "first_non_null")

SurvivorshipRule = Literal["source_trust", "most_recent", "most_frequent", "most_complete", "first_non_null"]


class HouseholdConfig(Strict):
    enabled: bool = True
    same_family_name: bool = Field(False, description="also require the same family name")
    max_size: int = Field(12, ge=2, description="larger address groups are not households (care homes, dorms)")


class RfmConfig(Strict):
    recency_days: list[int] = Field(default_factory=lambda: [30, 90, 180, 365], min_length=4, max_length=4)
    frequency_orders: list[int] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=4, max_length=4)
    monetary_eur: list[float] = Field(default_factory=lambda: [50, 150, 400, 1000], min_length=4, max_length=4)


class GoldenConfig(Strict):
    default_rule: SurvivorshipRule = "source_trust"
    survivorship: dict[str, SurvivorshipRule] = Field(
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
    households: HouseholdConfig = Field(default_factory=HouseholdConfig)
    rfm: RfmConfig = Field(default_factory=RfmConfig)

    def semantic_problems(self, root: Any) -> list[tuple[str, Any, str]]:
        from jobs.common.schemas import SURVIVING_ATTRIBUTES

        return [
            (f"golden.survivorship.{attr}", attr, f"one of the profile attributes: {', '.join(SURVIVING_ATTRIBUTES)}")
            for attr in self.survivorship
            if attr not in SURVIVING_ATTRIBUTES
        ]
