"""What every job gets from the entry point: config, session, lake, run date."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from .config import LoadedConfig
from .delta import DeltaRsEngine, Lake, delta_rs_root_problem, local_path, pick_engine
from .errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from .settings import CdpConfig

log = logging.getLogger(__name__)


@dataclass
class Context:
    loaded: LoadedConfig
    spark: "SparkSession"
    lake: Lake
    run_date: date
    parent_run_id: str | None = None
    # What one stage hands the next within one `cdp run` (e.g. the record keys standardize changed).
    state: dict = field(default_factory=dict)

    @property
    def cfg(self) -> "CdpConfig":
        return self.loaded.model

    @property
    def config_hash(self) -> str:
        return self.loaded.hash

    @property
    def data_root(self) -> str:
        return os.path.abspath(self.cfg.data.root)

    @property
    def lake_root(self) -> str:
        return self.lake.root

    @property
    def mlflow_uri(self) -> str:
        uri = self.cfg.mlflow.tracking_uri
        if uri:
            return uri
        if local_path(self.lake_root) is None:
            raise ConfigError(
                f"mlflow.tracking_uri: got nothing with lake.root {self.lake_root!r}; expected a tracking server "
                "(e.g. databricks, http://mlflow:5000): the default SQLite store lives under a local lake.root"
            )
        folder = os.path.join(self.lake_root, "_mlflow")
        os.makedirs(folder, exist_ok=True)
        return f"sqlite:///{os.path.join(folder, 'mlflow.db')}"

    @property
    def mlflow_artifacts(self) -> str:
        return os.path.join(self.lake_root, "_mlflow", "artifacts")

    @property
    def run_at(self) -> datetime:
        return datetime.now(timezone.utc)


def build_context(loaded: LoadedConfig, spark: "SparkSession | None" = None, parent_run_id: str | None = None) -> Context:
    """Start (or join) Spark and open the lake, as the config says."""
    from .spark import get_or_build_session

    cfg = loaded.model
    local_root = local_path(cfg.lake.root)
    lake_root = local_root or cfg.lake.root.rstrip("/")
    if local_root:
        os.makedirs(local_root, exist_ok=True)
    if spark is None:
        extra = dict(cfg.spark.conf)
        jars = [j for j in cfg.spark.jars if os.path.exists(j)]
        missing = [j for j in cfg.spark.jars if not os.path.exists(j)]
        for j in missing:
            log.warning("spark.jars: %s does not exist; left out", j)
        if jars:
            extra["spark.jars"] = ",".join(jars)
        spark = get_or_build_session(
            app_name=cfg.spark.app_name,
            master=cfg.spark.master,
            shuffle_partitions=cfg.spark.shuffle_partitions,
            checkpoint_dir=f"{lake_root}/_checkpoints",
            driver_memory=cfg.spark.driver_memory,
            extra_conf=extra,
            want_delta_spark=cfg.lake.engine == "delta-spark",
        )
    engine = pick_engine(spark, cfg.lake.engine)
    if isinstance(engine, DeltaRsEngine):
        problem = delta_rs_root_problem(lake_root)
        if problem:
            chosen = " (lake.engine: auto chose delta-rs: the session has no Delta SQL extensions)"
            raise ConfigError(f"lake.root: got {cfg.lake.root!r}; expected {problem}{chosen if cfg.lake.engine == 'auto' else ''}")
        engine.arrow_merge_limit = cfg.lake.arrow_merge_limit
        engine.merge_rewrite_bytes = cfg.lake.merge_rewrite_bytes
    log.info("lake %s with the %s engine", lake_root, engine.name)
    run_date = date.fromisoformat(cfg.run.date) if cfg.run.date else datetime.now(timezone.utc).date()
    return Context(loaded, spark, Lake(spark, lake_root, engine), run_date, parent_run_id)
