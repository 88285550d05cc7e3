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

    environment: str = Field("local", pattern=r"^[a-z][a-z0-9_-]*$")
    spark: SparkConfig = Field(default_factory=SparkConfig)
    lake: LakeConfig = Field(default_factory=LakeConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    standardize: StandardizeConfig = Field(default_factory=StandardizeConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)
    golden: GoldenConfig = Field(default_factory=GoldenConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

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
