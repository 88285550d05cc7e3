"""The standardize job on generated data, and the source settings it applies.

The end-to-end tests assert on the session ``pipeline`` fixture's lake (generate -> ingest ->
standardize -> match -> golden, once for the suite) and, for an incremental delivery, on a copy of it.
"""

from __future__ import annotations

from jobs.ingest.config import SourceConfig
from jobs.standardize.job import identifier_types_by_source


def _src(**kw: object) -> SourceConfig:
    base = {"name": "s", "format": "csv", "location": "x", "primary_key": ["id"]}
    return SourceConfig.model_validate({**base, **kw})


def test_identifier_types_by_source_follow_the_source_config() -> None:
    sources = [
        _src(name="crm", identifiers=["email", "customer_number"]),
        _src(name="shop"),  # left out: all six
        _src(name="web_events", kind="events", records_from="cookie_id", records_source="web", identifiers=["cookie_id"]),
        _src(name="app_events", kind="events", records_from="device_id", records_source="web", identifiers=["device_id"]),
        _src(name="orders", kind="events", identifiers=["email"]),  # derives no records: nothing to apply it to
    ]
    assert identifier_types_by_source(sources) == {
        "crm": ("email", "customer_number"),
        "shop": ("email", "phone", "customer_number", "loyalty_card", "cookie_id", "device_id"),
        "web": ("cookie_id", "device_id"),
    }
