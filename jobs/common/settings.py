"""The whole configuration: engine settings plus every stage's section."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from jobs.golden.config import GoldenConfig
from jobs.ingest.config import SourceConfig
from jobs.match.config import MatchConfig
from jobs.privacy.config import PrivacyConfig
from jobs.segments.config import SegmentsConfig
from jobs.standardize.config import StandardizeConfig

from .config import DataConfig, LakeConfig, MlflowConfig, RunConfig, SparkConfig, Strict


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

    @model_validator(mode="after")
    def _unique_sources(self) -> "CdpConfig":
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; {', '.join(dupes)} appear more than once")
        return self

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"unknown source {name!r}; configured: {', '.join(s.name for s in self.sources)}")

    def semantic_problems(self) -> list[tuple[str, Any, str]]:
        """Checks that need more than one section: (yaml path, value given, what was expected)."""
        problems: list[tuple[str, Any, str]] = []
        for section in (self.match, self.golden, self.segments, self.privacy):
            check = getattr(section, "semantic_problems", None)
            if check is not None:
                problems.extend(check(self))
        return problems
