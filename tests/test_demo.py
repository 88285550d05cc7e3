"""`cdp demo` as a user runs it: the shared pipeline fixture runs it through the CLI entry point
(tests/conftest.py), so these tests only read what it printed and what it left in the lake."""

from __future__ import annotations

import json
import re

from jobs.cli import STAGES
from jobs.common import schemas as S


def test_demo_prints_each_stage_result_then_where_the_tables_are(pipeline) -> None:  # noqa: ANN001
    out = pipeline.output
    assert pipeline.exit_code == 0
    lines = out.splitlines()
    results = [line for line in lines if re.match(r"^[a-z]+: \{", line)]
    assert [line.split(":", 1)[0] for line in results] == list(STAGES)
    assert all(isinstance(json.loads(line.split(": ", 1)[1]), dict) for line in results)
    summary = out.split("\nLakehouse: ", 1)[1]
    assert summary.startswith(f"{pipeline.lake} (Delta engine: delta-rs)\nSample data: {pipeline.data}\nTables:\n")
    tables = re.findall(r"^  ([a-z_]+\.[a-z_]+) +([\d,]+) rows   (\S+)$", summary, re.M)
    lake = pipeline.ctx.lake
    assert [address for address, _, _ in tables] == lake.tables()
    assert all(path == lake.path(address) for address, _, path in tables)
    counts = {address: int(n.replace(",", "")) for address, n, _ in tables}
    for address in (S.SILVER_RECORDS.address, S.GOLDEN_PROFILES.address, S.MATCH_CLUSTERS.address):
        assert counts[address] == lake.read(address).count() > 0, address
    persons = lake.read(S.GOLDEN_PROFILES.address).count()
    assert f"\npersons: {persons:,}\n" in summary
    per_source = {r.source: r["count"] for r in lake.read(S.SILVER_RECORDS.address).groupBy("source").count().collect()}
    block = summary.split("records per source:\n", 1)[1].splitlines()
    shown = [line.split() for line in block[: next(i for i, line in enumerate(block) if not line.startswith("  "))]]
    assert {source: int(n.replace(",", "")) for source, n in shown} == per_source
    assert re.search(r"\nDone in \d+s\. Try: cdp profile --id person_id:<id from golden\.profiles>\n$", summary)


def test_demo_logs_every_stage_boundary_with_rows_and_time(pipeline) -> None:  # noqa: ANN001
    """Not a terminal here: plain log lines, one per stage boundary, no status-line escapes."""
    log = pipeline.log
    assert "\x1b" not in log and "\r" not in log
    for job in STAGES:
        assert re.search(rf"INFO jobs\.common\.runlog: \[{job}\] done \(in [\d,]+, out [\d,]+, quarantined [\d,]+\) \(\d+\.\ds\)\n", log), job
    assert re.search(r"INFO cdp: pipeline finished in \d+\.\ds\n", log)
