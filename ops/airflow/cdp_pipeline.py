"""Airflow DAGs for the CDP job suite: the daily pipeline, weekly training, daily retention.

Copy this file into the DAGs folder. Every task is one ``spark-submit`` of one ``cdp`` verb, so
a failed stage is retried on its own and the stages before it are not run again (each job is
idempotent: a rerun adds nothing twice and completes a run that was killed halfway).

DAGs
  cdp_pipeline           daily    ingest >> standardize >> match >> golden >> segments
  cdp_match_train        weekly   cdp match train (new model version in the MLflow registry)
  cdp_privacy_retention  daily    cdp privacy retention

Params (change them per run in the trigger form, or here for every run):
  config      the environment file on the Airflow worker (the stage files it includes sit beside it)
  overrides   list of KEY=VALUE, each passed as ``--set KEY=VALUE`` (see docs/config.md)
  incremental pipeline stages after ingest process only new or changed records

All tasks share the Airflow pool ``cdp_lake`` (create it with one slot:
``airflow pools set cdp_lake 1 "CDP lake writers"``) so two DAGs never write the lake at once.
The commands run in client mode on the worker, which needs the repository checkout (for the
config and ops/spark/cdp_main.py), the wheel, and ``spark-submit`` on its PATH. Executors get the
Python dependencies from a packed virtualenv (``venv-pack -o cdp_env.tar.gz``), see README.md,
section "Running on a cluster".

tests/test_ops.py checks this file without Airflow: it parses it with ``ast``, renders each
command with the default params and parses the ``cdp`` arguments with ``jobs.cli.build_parser()``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.models.param import Param
    from airflow.operators.bash import BashOperator

# Versions of this stack: pyspark 4.2.0, delta-spark 4.4.1, graphframes-py 0.12.3 (Scala 2.13).
PACKAGES = "io.delta:delta-spark_4.2_2.13:4.4.1,io.graphframes:graphframes-spark4_2.13:0.12.3"
WHEEL = "dist/cdp_jobs-0.1.0-py3-none-any.whl"
VENV_ARCHIVE = "cdp_env.tar.gz"
REPO = "/opt/cdp"  # checkout on the worker: conf/ and ops/spark/cdp_main.py
DRIVER_PYTHON = REPO + "/.venv/bin/python"  # the driver (client mode): an environment with cdp installed
CONFIG = "conf/prod.yaml"
MASTER = "yarn"
# No spark.master here: a job started by spark-submit takes its --master (the config's
# spark.master is for local runs only). GraphFrames checkpoints locally unless
# match.clustering.checkpoint=reliable (then in <lake.root>/_checkpoints).
OVERRIDES = ["lake.engine=delta-spark", "match.clustering.engine=graphframes"]

SPARK_SUBMIT = (
    "cd " + REPO + " && "
    "PYSPARK_DRIVER_PYTHON=" + DRIVER_PYTHON + " PYSPARK_PYTHON=./environment/bin/python "
    "spark-submit --master " + MASTER + " --deploy-mode client "
    "--name cdp-{{ task.task_id }} "
    "--packages " + PACKAGES + " "
    "--conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension "
    "--conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog "
    "--archives " + VENV_ARCHIVE + "#environment "
    "--py-files " + WHEEL + " "
    "ops/spark/cdp_main.py"
)
# cdp arguments every command gets: the config, each override as --set, the run date.
CDP_OPTIONS = (
    "--config '{{ params.config }}' "
    "{% for kv in params.overrides %}--set '{{ kv }}' {% endfor %}"
    "--run-date {{ ds }}"
)
INCREMENTAL = "{% if params.incremental %} --incremental{% endif %}"


def cdp_command(verb: str, incremental: bool = False) -> str:
    """The exact shell command of one task: spark-submit, then the cdp verb and its options."""
    return f"{SPARK_SUBMIT} {verb} {CDP_OPTIONS}" + (INCREMENTAL if incremental else "")


PARAMS = {
    "config": Param(CONFIG, type="string", description="environment file, relative to the checkout"),
    "overrides": Param(OVERRIDES, type="array", description="KEY=VALUE config overrides, each passed as --set"),
    "incremental": Param(False, type="boolean", description="stages after ingest: only new or changed records"),
}

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=6),
    "pool": "cdp_lake",
}

with DAG(
    dag_id="cdp_pipeline",
    description="CDP: land, standardise, match, golden profiles, segments",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["cdp"],
) as pipeline:
    ingest = BashOperator(task_id="ingest", bash_command=cdp_command("ingest"))
    standardize = BashOperator(task_id="standardize", bash_command=cdp_command("standardize", incremental=True))
    match = BashOperator(task_id="match", bash_command=cdp_command("match", incremental=True))
    golden = BashOperator(task_id="golden", bash_command=cdp_command("golden", incremental=True))
    segments = BashOperator(task_id="segments", bash_command=cdp_command("segments", incremental=True))

    ingest >> standardize >> match >> golden >> segments

with DAG(
    dag_id="cdp_match_train",
    description="CDP: retrain the Fellegi-Sunter match model (registers a new model version)",
    schedule="0 4 * * 0",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["cdp"],
) as training:
    match_train = BashOperator(task_id="match_train", bash_command=cdp_command("match train"))

with DAG(
    dag_id="cdp_privacy_retention",
    description="CDP: delete records past their source's retention period",
    schedule="0 1 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["cdp", "privacy"],
) as retention:
    privacy_retention = BashOperator(task_id="privacy_retention", bash_command=cdp_command("privacy retention"))
