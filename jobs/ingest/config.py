"""Source definitions (conf/sources/*.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from jobs.common.config import Strict
from jobs.common.schemas import CANONICAL_FIELDS, EVENT_FIELDS, IDENTIFIER_TYPES


class JdbcConfig(Strict):
    url: str = Field(..., pattern=r"^jdbc:[a-z0-9]+:")
    table: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    user: str | None = None
    password: str | None = Field(None, repr=False)
    driver: str = "org.postgresql.Driver"
    watermark_column: str = Field("updated_at", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    fetch_size: int = Field(10_000, ge=1)


class SourceConfig(Strict):
    """One source: where its rows are, how to read them, how they map to the canonical model."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    kind: Literal["persons", "events"] = "persons"
    format: Literal["csv", "json", "ndjson", "parquet", "jdbc"]
    location: str | None = Field(
        None,
        description="file, folder or glob, relative to data.root; a folder is a landing folder: "
        "each file in it is ingested once",
    )
    pattern: str = Field("*", description="file name pattern inside a landing folder")
    encoding: Literal["utf-8", "latin-1", "cp1252", "auto"] = "utf-8"
    delimiter: str = Field(",", min_length=1, max_length=1)
    quote: str = Field('"', min_length=1, max_length=1)
    header: bool = True
    primary_key: list[str] = Field(..., min_length=1)
    required: list[str] = Field(default_factory=list, description="source fields a file must have")
    mapping: dict[str, str] = Field(default_factory=dict, description="canonical field -> source field")
    extensions: dict[str, str] = Field(default_factory=dict, description="extension attribute -> source field")
    event_types: dict[str, str] = Field(default_factory=dict, description="source event type -> canonical")
    event_type: str | None = Field(None, description="event type of every row, when the source has no type field")
    records_from: Literal["cookie_id", "device_id"] | None = Field(
        None, description="events only: each distinct value becomes an (anonymous) person record"
    )
    records_source: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    identifiers: list[str] = Field(default_factory=lambda: list(IDENTIFIER_TYPES))
    trust_rank: int = Field(5, ge=1, le=100, description="1 = most trusted")
    default_country: str = Field("NL", pattern=r"^[A-Z]{2}$")
    retention_days: int | None = Field(None, ge=1)
    jdbc: JdbcConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> "SourceConfig":
        allowed = CANONICAL_FIELDS if self.kind == "persons" else EVENT_FIELDS
        unknown = [k for k in self.mapping if k not in allowed]
        if unknown:
            raise ValueError(
                f"mapping names unknown canonical field(s) {', '.join(unknown)}; "
                f"expected {self.kind} fields: {', '.join(allowed)}"
            )
        bad_ids = [i for i in self.identifiers if i not in IDENTIFIER_TYPES]
        if bad_ids:
            raise ValueError(f"identifiers {bad_ids}: expected some of {', '.join(IDENTIFIER_TYPES)}")
        if self.format == "jdbc" and self.jdbc is None:
            raise ValueError("format jdbc needs a jdbc section (url, table, user, password)")
        if self.format != "jdbc" and not self.location:
            raise ValueError(f"format {self.format} needs a location (file, folder or glob)")
        if self.records_from and self.kind != "events":
            raise ValueError("records_from is only for event sources")
        if self.kind == "persons" and "source_id" not in self.mapping and len(self.primary_key) == 1:
            self.mapping["source_id"] = self.primary_key[0]
        return self

    @property
    def fields(self) -> list[str]:
        """Source fields bronze keeps as columns: key, mapped, extension and required fields."""
        seen: dict[str, None] = {}
        for f in [*self.primary_key, *self.mapping.values(), *self.extensions.values(), *self.required]:
            seen.setdefault(f, None)
        return list(seen)
