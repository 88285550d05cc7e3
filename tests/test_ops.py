"""The operations examples (ops/) run real ``cdp`` commands in the right order.

Neither Airflow nor the Databricks CLI is installed: the DAG file is read with ``ast`` (never
imported), each task's command is rendered with Jinja as Airflow would and the ``cdp`` part is
parsed with ``jobs.cli.build_parser()``; the bundle is read as YAML. The ``--set`` overrides are
loaded with the real config loader so a renamed config key fails here. No Spark.
"""

from __future__ import annotations

import ast
import gc
import re
import shlex
from importlib.metadata import entry_points, version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
import yaml

from jobs.cli import STAGES, build_parser
from jobs.common.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DAG_FILE = ROOT / "ops" / "airflow" / "cdp_pipeline.py"
BUNDLE_FILE = ROOT / "ops" / "databricks" / "databricks.yml"
ENTRY = "ops/spark/cdp_main.py"
RUN_DATE = "2026-11-25"


def expected_delta_coordinate() -> str:
    """What delta-spark's own pip_utils would put in spark.jars.packages for this pyspark."""
    spark_minor = ".".join(version("pyspark").split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{version('delta-spark')}"


def expected_graphframes_coordinate() -> str:
    return f"io.graphframes:graphframes-spark{version('pyspark').split('.')[0]}_2.13:{version('graphframes-py')}"


def parse_cdp(args: list[str], where: str) -> Any:
    try:
        return build_parser().parse_args(args)
    except SystemExit as exc:  # argparse exits on a bad command line
        pytest.fail(f"{where}: `cdp {' '.join(args)}` is not a valid cdp command (argparse exit {exc.code})")


def check_overrides(overrides: list[str], tmp_path: Path, where: str) -> None:
    """Every --set names a real config key with a valid value (the real loader, no Spark)."""
    env = tmp_path / "env.yaml"
    env.write_text("environment: test\n", encoding="utf-8")
    try:
        load_config(str(env), overrides)
    except Exception as exc:  # noqa: BLE001 - report which overrides broke
        pytest.fail(f"{where}: overrides {overrides} are not valid config: {exc}")


# --- Airflow -----------------------------------------------------------------------------------


def _dag_module() -> ast.Module:
    return ast.parse(DAG_FILE.read_text(encoding="utf-8"), filename=str(DAG_FILE))


def _helpers(tree: ast.Module) -> dict[str, Any]:
    """Run the DAG file's plain constants and functions (no Airflow objects) in a namespace."""
    keep: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            keep.append(node)
        elif isinstance(node, ast.Assign) and not any(isinstance(n, ast.Call) for n in ast.walk(node.value)):
            keep.append(node)
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(DAG_FILE), "exec"), namespace)  # noqa: S102
    return namespace


def _kwargs(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _chain(expr: ast.expr) -> list[str]:
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.RShift):
        return _chain(expr.left) + _chain(expr.right)
    assert isinstance(expr, ast.Name), ast.dump(expr)
    return [expr.id]


def airflow_dags() -> dict[str, dict[str, Any]]:
    """dag_id -> {"tasks": {task_id: command}, "order": [[task_id, ...], ...]} read from the file.

    A finaliser run by the garbage collector inside ``compile`` (jupyter_client's kernel clients,
    left by the notebook tests, log from ``__del__``) trips CPython 3.11's "AST constructor
    recursion depth mismatch", so the file is read with collection paused.
    """
    gc.collect()
    gc.disable()
    try:
        return _airflow_dags()
    finally:
        gc.enable()


def _airflow_dags() -> dict[str, dict[str, Any]]:
    tree = _dag_module()
    ns = _helpers(tree)
    dags: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if not isinstance(node, ast.With):
            continue
        call = node.items[0].context_expr
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "DAG"
        dag_id = ast.literal_eval(_kwargs(call)["dag_id"])
        tasks: dict[str, str] = {}
        var_to_task: dict[str, str] = {}
        order: list[list[str]] = []
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                op = stmt.value
                assert isinstance(op.func, ast.Name) and op.func.id == "BashOperator", ast.dump(op.func)
                kw = _kwargs(op)
                task_id = ast.literal_eval(kw["task_id"])
                command = eval(compile(ast.Expression(kw["bash_command"]), str(DAG_FILE), "eval"), dict(ns))  # noqa: S307
                tasks[task_id] = command
                var_to_task[stmt.targets[0].id] = task_id  # type: ignore[attr-defined]
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.BinOp):
                order.append([var_to_task[v] for v in _chain(stmt.value)])
        dags[dag_id] = {"tasks": tasks, "order": order, "ns": ns}
    return dags


def render(command: str, ns: dict[str, Any], task_id: str, incremental: bool = True) -> list[str]:
    params = {"config": ns["CONFIG"], "overrides": ns["OVERRIDES"], "incremental": incremental}
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(command).render(
        params=params, ds=RUN_DATE, task=SimpleNamespace(task_id=task_id)
    )
    return shlex.split(text)


def cdp_args(argv: list[str], where: str) -> list[str]:
    assert "spark-submit" in argv, f"{where}: no spark-submit in {argv}"
    assert ENTRY in argv, f"{where}: spark-submit does not run {ENTRY}"
    return argv[argv.index(ENTRY) + 1 :]


def test_dag_file_is_valid_python_and_needs_no_airflow_to_check() -> None:
    tree = _dag_module()
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "airflow.operators.bash" in imports and "airflow.providers.standard.operators.bash" in imports


def test_dags_and_task_ids() -> None:
    dags = airflow_dags()
    assert sorted(dags) == ["cdp_match_train", "cdp_pipeline", "cdp_privacy_retention"]
    assert list(dags["cdp_pipeline"]["tasks"]) == list(STAGES)
    assert list(dags["cdp_match_train"]["tasks"]) == ["match_train"]
    assert list(dags["cdp_privacy_retention"]["tasks"]) == ["privacy_retention"]


def test_pipeline_runs_the_stages_in_order() -> None:
    dags = airflow_dags()
    assert dags["cdp_pipeline"]["order"] == [["ingest", "standardize", "match", "golden", "segments"]]
    assert list(STAGES) == ["ingest", "standardize", "match", "golden", "segments"]


@pytest.mark.parametrize("incremental", [False, True])
def test_every_airflow_command_is_a_real_cdp_command(incremental: bool, tmp_path: Path) -> None:
    expected = {
        "ingest": ("ingest", None),
        "standardize": ("standardize", None),
        "match": ("match", "score"),
        "golden": ("golden", None),
        "segments": ("segments", None),
        "match_train": ("match", "train"),
        "privacy_retention": ("privacy", "retention"),
    }
    seen = []
    for dag_id, dag in airflow_dags().items():
        ns = dag["ns"]
        for task_id, command in dag["tasks"].items():
            where = f"{DAG_FILE.name} {dag_id}.{task_id}"
            args = parse_cdp(cdp_args(render(command, ns, task_id, incremental), where), where)
            verb, action = expected[task_id]
            assert args.command == verb, where
            assert getattr(args, "action", None) == action, where
            assert args.config == ns["CONFIG"] == "conf/prod.yaml"
            assert args.set == ns["OVERRIDES"]
            assert args.run_date == RUN_DATE
            if task_id in ("standardize", "match", "golden", "segments"):
                assert args.incremental is incremental, where
            seen.append(task_id)
    assert sorted(seen) == sorted(expected)


def test_airflow_spark_submit_options(tmp_path: Path) -> None:
    dag = airflow_dags()["cdp_pipeline"]
    ns = dag["ns"]
    argv = render(dag["tasks"]["ingest"], ns, "ingest")
    submit = argv[argv.index("spark-submit") + 1 : argv.index(ENTRY)]
    packages = submit[submit.index("--packages") + 1].split(",")
    assert packages == [expected_delta_coordinate(), expected_graphframes_coordinate()]
    confs = [submit[i + 1] for i, a in enumerate(submit) if a == "--conf"]
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in confs
    assert submit[submit.index("--py-files") + 1] == f"dist/cdp_jobs-{version('cdp-jobs')}-py3-none-any.whl"
    assert submit[submit.index("--name") + 1] == "cdp-ingest"
    assert submit[submit.index("--master") + 1] == "yarn"
    # a job under spark-submit takes its --master (jobs.common.spark, tests/common/test_spark.py):
    # a spark.master override would be ignored there, so none is given
    assert not [kv for kv in ns["OVERRIDES"] if kv.startswith("spark.master=")]
    assert (ROOT / ENTRY).is_file()
    check_overrides(ns["OVERRIDES"], tmp_path, DAG_FILE.name)


def test_airflow_retries_and_params() -> None:
    tree = _dag_module()
    source = DAG_FILE.read_text(encoding="utf-8")
    assert re.search(r'"retries":\s*2', source)
    params = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PARAMS")
    assert isinstance(params.value, ast.Dict)
    assert [ast.literal_eval(k) for k in params.value.keys if k is not None] == ["config", "overrides", "incremental"]


# --- Databricks ----------------------------------------------------------------------------------


def _bundle() -> dict[str, Any]:
    return yaml.safe_load(BUNDLE_FILE.read_text(encoding="utf-8"))


def _resolve_vars(value: str, variables: dict[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in variables:
            pytest.fail(f"{BUNDLE_FILE.name}: ${{var.{name}}} is not declared under variables")
        return str(variables[name]["default"])

    return re.sub(r"\$\{var\.([a-z_]+)\}", sub, value)


def test_bundle_pipeline_tasks_depend_in_stage_order() -> None:
    job = _bundle()["resources"]["jobs"]["cdp_pipeline"]
    keys = [t["task_key"] for t in job["tasks"]]
    assert keys == list(STAGES)
    deps = {t["task_key"]: [d["task_key"] for d in t.get("depends_on", [])] for t in job["tasks"]}
    assert deps == {"ingest": [], "standardize": ["ingest"], "match": ["standardize"], "golden": ["match"], "segments": ["golden"]}


def test_bundle_task_parameters_are_real_cdp_commands(tmp_path: Path) -> None:
    bundle = _bundle()
    variables = bundle["variables"]
    cluster_keys: set[str] = set()
    expected = {
        "ingest": ("ingest", None),
        "standardize": ("standardize", None),
        "match": ("match", "score"),
        "golden": ("golden", None),
        "segments": ("segments", None),
        "match_train": ("match", "train"),
        "privacy_retention": ("privacy", "retention"),
    }
    seen = []
    for job_name, job in bundle["resources"]["jobs"].items():
        cluster_keys = {c["job_cluster_key"] for c in job["job_clusters"]}
        for task in job["tasks"]:
            where = f"{BUNDLE_FILE.name} {job_name}.{task['task_key']}"
            wheel = task["python_wheel_task"]
            assert wheel["package_name"] == "cdp_jobs", where
            assert wheel["entry_point"] == "cdp", where
            assert task["job_cluster_key"] in cluster_keys, where
            assert task["max_retries"] >= 1, where
            params = [_resolve_vars(str(p), variables) for p in wheel["parameters"]]
            args = parse_cdp(params, where)
            verb, action = expected[task["task_key"]]
            assert (args.command, getattr(args, "action", None)) == (verb, action), where
            assert "lake.engine=delta-spark" in args.set, where
            check_overrides(args.set, tmp_path, where)
            libs = task["libraries"]
            assert {"whl": "../../dist/*.whl"} in libs, where
            assert {"maven": {"coordinates": expected_graphframes_coordinate()}} in libs, where
            seen.append(task["task_key"])
    assert sorted(seen) == sorted(expected)


def test_bundle_cluster_and_wheel_entry_point() -> None:
    bundle = _bundle()
    for job in bundle["resources"]["jobs"].values():
        cluster = job["job_clusters"][0]["new_cluster"]
        assert cluster["spark_version"] == "${var.spark_version}"
    runtime = bundle["variables"]["spark_version"]["default"]
    major = int(runtime.split(".")[0])
    assert major >= 17 and runtime.endswith("-scala2.13"), runtime  # DBR 17+ = Spark 4, Scala 2.13
    # the entry point the tasks call is the one the wheel declares
    (cdp,) = entry_points(group="console_scripts", name="cdp")
    assert cdp.value == "jobs.cli:main"
    assert bundle["artifacts"]["cdp_wheel"]["type"] == "whl"
    assert (BUNDLE_FILE.parent / bundle["artifacts"]["cdp_wheel"]["path"] / "setup.py").resolve().is_file()
