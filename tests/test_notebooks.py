"""The analyst notebooks run top to bottom on the pipeline's lake and produce their charts.

Each notebook is stored without outputs (notebooks/build.py writes them); the test executes a
copy with nbclient on a kernel running this interpreter, with CDP_LAKE_ROOT / CDP_DATA_ROOT
pointing at the session ``pipeline`` fixture, and reads the one JSON line its ``summary`` cell
prints for value checks.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
CELL_TIMEOUT = 900  # seconds; notebook 4 starts Spark through the CLI three times


def _kernel_dir(base: Path) -> Path:
    """A kernelspec that runs this interpreter (the .venv), whatever ``python`` is on PATH."""
    spec = base / "kernels" / "cdp-test"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "cdp test kernel",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    return base / "kernels"


def execute_notebook(name: str, lake: Path, data: Path, work: Path, timeout: int = CELL_TIMEOUT) -> Any:
    """Run a copy of ``notebooks/<name>`` (cwd notebooks/, as ``jupyter lab notebooks/`` would); return it."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    ksm = KernelSpecManager(kernel_dirs=[str(_kernel_dir(work))], ensure_native_kernel=False)
    km = KernelManager(kernel_name="cdp-test", kernel_spec_manager=ksm)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's inline backend draws PNGs
    env.update(CDP_LAKE_ROOT=str(lake), CDP_DATA_ROOT=str(data))
    tmp = work / f"tmp-{Path(name).stem}"  # the notebook's temporary copies land here, cleaned up by pytest
    tmp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp)
    env.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    client = nbclient.NotebookClient(
        nb, km=km, timeout=timeout, kernel_name="cdp-test", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    try:
        client.execute(env=env)
    finally:
        # collect the kernel clients now: their __del__ logs, and run later by a stray collection
        # (inside another test's compile(), after pytest closed the capture stream) it breaks there
        del client, km
        gc.collect()
    nbformat.write(nb, work / name)  # the executed copy, for a look when a check fails
    return nb


def outputs(nb: Any) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def images(nb: Any) -> int:
    return sum(1 for o in outputs(nb) if "image/png" in o.get("data", {}))


def errors(nb: Any) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs(nb) if o.get("output_type") == "error"]


def summary(nb: Any) -> dict[str, Any]:
    cells = [c for c in nb.cells if "summary" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "expected exactly one cell tagged 'summary'"
    text = "".join(o.get("text", "") for o in cells[0].outputs if o.get("name") == "stdout")
    return json.loads(text.strip().splitlines()[-1])


def _delta_rows(path: Path) -> int:
    from deltalake import DeltaTable

    return DeltaTable(str(path)).to_pyarrow_table(columns=["person_id"]).num_rows


# --- stored form ---------------------------------------------------------------------------------


def test_notebooks_are_stored_without_outputs_and_match_build() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("cdp_notebooks_build", NOTEBOOKS / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert sorted(build.NOTEBOOKS) == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for name in build.NOTEBOOKS:
        text = (NOTEBOOKS / name).read_text(encoding="utf-8")
        assert text == build.render(name), f"{name} differs from notebooks/build.py; run it"
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.outputs == [] and c.execution_count is None for c in code), name
        assert "CDP_LAKE_ROOT" in code[0].source and "CDP_DATA_ROOT" in code[0].source


# --- executed on the pipeline's lake ----------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.slow
def test_01_golden_profiles(pipeline, work: Path) -> None:  # noqa: ANN001
    nb = execute_notebook("01_golden_profiles.ipynb", pipeline.lake, pipeline.data, work)
    assert errors(nb) == []
    assert images(nb) >= 2
    s = summary(nb)
    assert s["profiles"] == _delta_rows(pipeline.lake / "golden" / "profiles")
    assert s["records"] >= s["profiles"] > 0
    assert 0 < s["households"] <= s["profiles"]
    assert s["early_version"] <= s["latest_version"]
    assert s["max_record_count"] >= 2


@pytest.mark.slow
def test_02_match_quality(pipeline, work: Path) -> None:  # noqa: ANN001
    nb = execute_notebook("02_match_quality.ipynb", pipeline.lake, pipeline.data, work)
    assert errors(nb) == []
    assert images(nb) >= 4
    s = summary(nb)
    assert s["pairs"] > 0 and s["true_pairs"] > 0
    thresholds = ["0.5", "0.6", "0.7", "0.8", "0.9", "0.95", "0.99"]
    assert sorted(s["precision_recall"], key=float) == thresholds
    for t in thresholds:
        precision, recall = s["precision_recall"][t]
        assert 0.0 <= precision <= 1.0 and 0.0 <= recall <= 1.0, (t, precision, recall)
    recalls = [s["precision_recall"][t][1] for t in thresholds]
    assert recalls == sorted(recalls, reverse=True), "recall cannot grow with the threshold"
    assert all(0.0 <= v <= 1.0 for v in s["clusters"])
    assert s["explain_max_error"] < 1e-6, "prior + sum(weights) must equal match_weight"
    assert s["comparisons"]


@pytest.mark.slow
def test_03_data_quality(pipeline, work: Path) -> None:  # noqa: ANN001
    nb = execute_notebook("03_data_quality.ipynb", pipeline.lake, pipeline.data, work)
    assert errors(nb) == []
    assert images(nb) >= 3
    s = summary(nb)
    assert s["sources"] and s["dq_rows"] > 0
    low, high = s["completeness_range"]
    assert 0.0 <= low <= high <= 1.0
    assert s["runs"] >= 5 and s["failed_runs"] == 0
    assert s["ingest_balanced"] is True
    assert s["quarantined"] == sum(s["quarantined_by_source"].values())


@pytest.mark.slow
def test_04_privacy_request_erases_only_a_copy(pipeline, work: Path) -> None:  # noqa: ANN001
    profiles = pipeline.lake / "golden" / "profiles"
    before = _delta_rows(profiles)
    version_before = len(list((profiles / "_delta_log").glob("*.json")))
    nb = execute_notebook("04_privacy_request.ipynb", pipeline.lake, pipeline.data, work)
    assert errors(nb) == []
    assert images(nb) >= 1
    s = summary(nb)
    assert _delta_rows(profiles) == before, "the notebook must erase on a copy, never the given lake"
    assert len(list((profiles / "_delta_log").glob("*.json"))) == version_before
    assert not (pipeline.lake / "privacy" / "audit").exists() or not _audit_has(pipeline.lake, s["subject_hash"])
    assert s["profiles_original"] == before == s["profiles_copy_before"]
    assert s["outcome"] == "verified" and s["scan_hits"] == 0
    assert s["rows_removed"] > 0
    assert s["profile_unknown"] is True
    assert {"bronze", "silver", "golden"} <= set(s["export_layers"])
    assert len(s["subject_hash"]) >= 32 and "@" not in s["subject_hash"]


def _audit_has(lake: Path, subject_hash: str) -> bool:
    from deltalake import DeltaTable

    hashes = DeltaTable(str(lake / "privacy" / "audit")).to_pyarrow_table(columns=["subject_hash"]).column(0).to_pylist()
    return subject_hash in hashes
