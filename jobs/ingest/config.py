"""Source definitions (conf/sources/*.yaml)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from jobs.common.config import Problem, Strict, check, is_partial, valid_items
from jobs.common.schemas import CANONICAL_FIELDS, EVENT_FIELDS, IDENTIFIER_TYPES, LINEAGE_COLUMNS

_INVALID_NAME = re.compile(r"[ ,;{}()\n\t=]")


def bronze_column(field: str) -> str:
    """Bronze column name of a source field (Delta forbids some characters without column mapping)."""
    return _INVALID_NAME.sub("_", field)


def bronze_column_clashes(fields: list[str]) -> list[tuple[str, str, str]]:
    """(field, field or lineage column it collides with, bronze column) for every collision.

    Sanitising is not injective ("first name" and "first_name"), and Spark and Delta compare column
    names without case, so both are checked; merging two fields into one column would lose values.
    """
    owners: dict[str, str] = {c.lower(): c for c in LINEAGE_COLUMNS}
    clashes = []
    for f in fields:
        col = bronze_column(f)
        folded = col.lower()
        if folded in owners:
            clashes.append((f, owners[folded], col))
        else:
            owners[folded] = f
    return clashes


def describe_clash(field: str, other: str, column: str) -> str:
    if other in LINEAGE_COLUMNS:
        return f"source field {field!r} maps to bronze column {column!r}, which is the lineage column {other!r}"
    return (
        f"source fields {other!r} and {field!r} both map to bronze column {column!r}; "
        "expected one column per field (rename one of them in the mapping)"
    )


class JdbcConfig(Strict):
    url: str = Field(..., pattern=r"^jdbc:[a-z0-9]+:", description="JDBC URL, e.g. jdbc:postgresql://db:5432/crm")
    table: str = Field(
        ..., pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", description="table (or schema.table) every pull reads"
    )
    user: str | None = Field(None, description="database user; null: none sent")
    password: str | None = Field(
        None, repr=False, description="database password; write it as ${VAR} so it comes from the environment"
    )
    driver: str = Field(
        "org.postgresql.Driver", description="JDBC driver class; its jar must be on the classpath (spark.jars)"
    )
    watermark_column: str = Field(
        "updated_at",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="timestamp column: a pull reads the rows at or after the last landed pull's maximum "
        "(rows already landed are dropped again)",
    )
    fetch_size: int = Field(10_000, ge=1, description="rows the JDBC driver fetches per round trip")


class OwnerConfig(Strict):
    """The person record an event belongs to: the persons source and this source's field(s) with its key.

    An order names the webshop account that placed it (``customer_id``); its owner's record key is
    computed as ingest computes that account's ``_record_key`` (jobs.common.keys), so the event is
    tied to its own account even when it carries no usable identifier.
    """

    source: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$", description="the persons source whose records own the events")
    key: list[str] = Field(
        ...,
        min_length=1,
        description="this source's field(s) holding the owner's primary key, in the order of its primary_key",
    )

    @field_validator("key", mode="before")
    @classmethod
    def _one_field(cls, v: Any) -> Any:
        """Accept a bare field name for a one-column key."""
        return [v] if isinstance(v, str) else v


class SourceConfig(Strict):
    """One source: where its rows are, how to read them, how they map to the canonical model."""

    name: str = Field(
        ...,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="source name: its bronze table is bronze.<name>, its records carry it as `source`",
    )
    description: str = Field("", description="free text for people; the jobs do not read it")
    kind: Literal["persons", "events"] = Field(
        "persons",
        description="persons: each row is a person record; events: each row is an event (order, receipt, "
        "page view, login, e-mail open or click) tied to a person through an identifier",
    )
    format: Literal["csv", "json", "ndjson", "parquet", "jdbc"] = Field(
        ..., description="how rows are read: csv, json and ndjson (both one JSON object per line), parquet, or jdbc (a table)"
    )
    location: str | None = Field(
        None,
        description="file, folder or glob, relative to data.root; a folder is a landing folder: "
        "each file in it is ingested once",
    )
    pattern: str = Field("*", description="file name pattern inside a landing folder")
    encoding: Literal["utf-8", "latin-1", "cp1252", "auto"] = Field(
        "utf-8",
        description="text encoding of csv and json files; auto: for csv UTF-8 unless most lines with non-ASCII "
        "bytes fail to decode as UTF-8, then Windows-1252 (json: UTF-8)",
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator (one character)")
    quote: str = Field('"', min_length=1, max_length=1, description="CSV quote character (one character)")
    header: bool = Field(
        True,
        description="CSV files start with a header line naming the fields; the reader requires one "
        "(false is not supported yet)",
    )
    primary_key: list[str] = Field(
        ...,
        min_length=1,
        description="source fields that identify a row within the source; with the source name they make "
        "the stable _record_key (a row without them is quarantined)",
    )
    required: list[str] = Field(default_factory=list, description="source fields a file must have")
    mapping: dict[str, str] = Field(default_factory=dict, description="canonical field -> source field")
    extensions: dict[str, str] = Field(default_factory=dict, description="extension attribute -> source field")
    event_types: dict[str, str] = Field(default_factory=dict, description="source event type -> canonical")
    event_type: str | None = Field(None, description="event type of every row, when the source has no type field")
    records_from: Literal["cookie_id", "device_id"] | None = Field(
        None, description="events only: each distinct value becomes an (anonymous) person record"
    )
    records_source: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="with records_from: the source name the anonymous person records get; null: this source's name",
    )
    owner: OwnerConfig | None = Field(
        None, description="events only: the person record each event belongs to (silver.events.owner_record_key)"
    )
    identifiers: list[str] = Field(
        default_factory=lambda: list(IDENTIFIER_TYPES),
        description="identifier types this source adds to silver.identifiers (events sources: for the records "
        "`records_from` derives); default: all six",
    )
    trust_rank: int = Field(5, ge=1, le=100, description="1 = most trusted")
    default_country: str = Field(
        "NL",
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2 country of rows that send none (or not a two-letter one): phone numbers "
        "and postcodes are read as that country's",
    )
    retention_days: int | None = Field(
        None, ge=1,
        description="days a row is kept (`cdp privacy retention`): a person row after its last activity (its last change "
        "or the last event it owns, such as an order), then with its events; an event row after its event_at; none = kept",
    )
    jdbc: JdbcConfig | None = Field(None, description="connection and table of a format: jdbc source")

    @check
    def _known_mapping_fields(self) -> Iterator[Problem]:
        allowed = CANONICAL_FIELDS if self.kind == "persons" else EVENT_FIELDS
        for k in self.mapping:
            if k not in allowed:
                yield Problem(
                    f"mapping.{k}", k, f"a canonical field for {self.kind} sources: {', '.join(allowed)}", f"key {k!r}"
                )

    @check
    def _known_identifiers(self) -> Iterator[Problem]:
        for i, id_type in valid_items(self.identifiers):
            if id_type not in IDENTIFIER_TYPES:
                yield Problem(f"identifiers[{i}]", id_type, f"one of {', '.join(IDENTIFIER_TYPES)}")

    @check
    def _jdbc_section(self) -> Iterator[Problem]:
        if self.format == "jdbc" and self.jdbc is None:
            yield Problem("jdbc", None, "a jdbc section (url, table, user, password) for format jdbc", "nothing")

    @check
    def _location(self) -> Iterator[Problem]:
        if self.format != "jdbc" and not self.location:
            given = "nothing" if self.location is None else None
            yield Problem("location", self.location, f"a file, folder or glob for format {self.format}", given)

    @check
    def _records_from_events_only(self) -> Iterator[Problem]:
        if self.records_from and self.kind != "events":
            yield Problem("records_from", self.records_from, f"no records_from for a {self.kind} source (events only)")

    @check
    def _owner_events_only(self) -> Iterator[Problem]:
        if self.owner is not None and self.kind != "events":
            yield Problem("owner", self.owner.model_dump(), f"no owner for a {self.kind} source (events only)")

    @check
    def _one_bronze_column_per_field(self) -> Iterator[Problem]:
        for field, other, column in bronze_column_clashes(self.fields):
            where = next(
                (f"{section}.{k}" for section in ("mapping", "extensions") for k, v in getattr(self, section).items() if v == field),
                "primary_key" if field in self.primary_key
                else "owner.key" if self.owner is not None and field in self.owner.key
                else "required",
            )
            if other in LINEAGE_COLUMNS:
                expected = f"a field whose bronze column is not the lineage column {other!r}"
            else:
                expected = f"a field with a bronze column of its own, but source field {other!r} maps to bronze column {column!r} too"
            yield Problem(where, field, expected)

    @model_validator(mode="after")
    def _default_source_id(self, info: ValidationInfo) -> "SourceConfig":
        """A person source with a one-column key maps it to ``source_id`` unless told otherwise."""
        if is_partial(info):
            return self
        if self.kind == "persons" and "source_id" not in self.mapping and len(self.primary_key) == 1:
            self.mapping["source_id"] = self.primary_key[0]
        return self

    @property
    def fields(self) -> list[str]:
        """Source fields bronze keeps as columns: key, mapped, extension, owner key and required fields."""
        seen: dict[str, None] = {}
        owner = list(self.owner.key) if self.owner is not None else []
        for f in [*self.primary_key, *self.mapping.values(), *self.extensions.values(), *owner, *self.required]:
            seen.setdefault(f, None)
        return list(seen)
