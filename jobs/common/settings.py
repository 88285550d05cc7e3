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
    DataConfig,
    LakeConfig,
    MlflowConfig,
    Problem,
    RunConfig,
    SparkConfig,
    Strict,
    check,
    duplicates,
    valid_attrs,
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

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"unknown source {name!r}; configured: {', '.join(s.name for s in self.sources)}")
