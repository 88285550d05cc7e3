"""The whole configuration: engine settings plus every stage's section."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from jobs.golden.config import GoldenConfig
from jobs.ingest.config import SourceConfig
from jobs.match.config import MatchConfig
from jobs.privacy.config import PrivacyConfig
from jobs.segments.config import SegmentsConfig
from jobs.standardize.config import StandardizeConfig

from .config import (
    INVALID,
    DataConfig,
    LakeConfig,
    MlflowConfig,
    Problem,
    RunConfig,
    SparkConfig,
    Strict,
    check,
    duplicates,
    is_invalid,
    valid_attrs,
    valid_items,
)


class CdpConfig(Strict):
    """Root of the configuration (conf/local.yaml and the files it includes)."""

    environment: str = Field(
        "local",
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="name of this environment (local, prod, ...): a label, part of the config hash in ops.runs",
    )
    spark: SparkConfig = Field(default_factory=SparkConfig, description="the Spark session (see spark below)")
    lake: LakeConfig = Field(default_factory=LakeConfig, description="where the Delta tables live, and the engine")
    data: DataConfig = Field(default_factory=DataConfig, description="where the sources' files are")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="MLflow tracking and model registry")
    run: RunConfig = Field(default_factory=RunConfig, description="run date and the demo's sample data")
    sources: list[SourceConfig] = Field(
        default_factory=list, description="every source, one per item (include.sources: files or a glob)"
    )
    standardize: StandardizeConfig = Field(
        default_factory=StandardizeConfig, description="cleansing and validation rules (include.standardize)"
    )
    match: MatchConfig = Field(
        default_factory=MatchConfig, description="blocking, comparisons, training, thresholds, clustering (include.match)"
    )
    golden: GoldenConfig = Field(
        default_factory=GoldenConfig, description="survivorship, households and RFM scores (include.golden)"
    )
    segments: SegmentsConfig = Field(
        default_factory=SegmentsConfig, description="segment rules and audience exports (include.segments)"
    )
    privacy: PrivacyConfig = Field(
        default_factory=PrivacyConfig, description="erasure, access export and suppression (include.privacy)"
    )

    @check
    def _unique_source_names(self) -> Iterator[Problem]:
        for i, name, first in duplicates(valid_attrs(self.sources, "name")):
            yield Problem(
                f"sources[{i}].name", name, f"a unique source name; {name!r} is already sources[{first}].name"
            )

    @check
    def _owners_are_person_sources(self) -> Iterator[Problem]:
        """An events source's owner names a configured persons source and one field per key column."""
        persons = {}
        for _, src in valid_items(self.sources):
            name, kind = getattr(src, "name", INVALID), getattr(src, "kind", INVALID)
            if not is_invalid(name) and not is_invalid(kind) and kind == "persons":
                persons.setdefault(name, src)  # a repeated name has its own problem
        for i, owner in valid_attrs(self.sources, "owner"):
            kind = getattr(self.sources[i], "kind", INVALID)
            if owner is None or is_invalid(owner.source) or is_invalid(kind) or kind != "events":
                continue  # a persons source's owner has its own problem
            target = persons.get(owner.source)
            if target is None:
                listed = ", ".join(sorted(persons)) or "none configured"
                yield Problem(f"sources[{i}].owner.source", owner.source, f"a persons source ({listed})")
            elif (
                not is_invalid(owner.key)
                and not is_invalid(target.primary_key)
                and target.primary_key
                and len(owner.key) != len(target.primary_key)
            ):
                yield Problem(
                    f"sources[{i}].owner.key",
                    owner.key,
                    f"{len(target.primary_key)} field(s), one per primary key column of {owner.source} "
                    f"({', '.join(target.primary_key)})",
                )

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"unknown source {name!r}; configured: {', '.join(s.name for s in self.sources)}")
