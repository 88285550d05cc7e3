"""Contract tests of the Delta table layer, run against every engine the session has."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import time
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DateType,
    DecimalType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from jobs.common import delta as delta_module
from jobs.common import schemas as S
from jobs.common.delta import DeltaRsEngine, DeltaSparkEngine, Lake, estimated_row_bytes, retry_commit, to_arrow_schema
from jobs.common.errors import DataError, SchemaError
from jobs.common.spark import detect_capabilities

SCHEMA = StructType(
    [
        StructField("k", StringType()),
        StructField("n", LongType()),
        StructField("ts", TimestampType()),
        StructField("ntz", TimestampNTZType()),
        StructField("d", DateType()),
        StructField("amount", DecimalType(18, 2)),
        StructField("tags", ArrayType(StringType())),
        StructField("attrs", MapType(StringType(), StringType())),
        StructField("addr", StructType([StructField("city", StringType()), StructField("pc", StringType())])),
    ]
)

ROWS = [
    (
        "a",
        1,
        dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 1, 2, 3, 4, 5),
        dt.date(1980, 2, 29),
        Decimal("59.95"),
        ["x", None],
        {"pet": "Bello"},
        ("Utrecht", "3511 AB"),
    ),
    ("b", None, None, None, None, None, None, None, None),
    ("c", 3, dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc), None, dt.date(2000, 1, 1), Decimal("-1.00"), [], {}, (None, "1000")),
]


def engines(spark):  # noqa: ANN001
    found = [DeltaRsEngine(spark)]
    if detect_capabilities(spark).delta_spark:
        found.append(DeltaSparkEngine(spark))
    return found


@pytest.fixture(params=["delta-rs", "delta-spark"])
def lake(request, spark, lake_root):  # noqa: ANN001
    available = {e.name: e for e in engines(spark)}
    if request.param not in available:
        pytest.skip(f"{request.param} is not on this session's classpath")
    return Lake(spark, str(lake_root), available[request.param])


def frame(spark, rows=ROWS):  # noqa: ANN001
    return spark.createDataFrame(rows, SCHEMA)


def test_types_round_trip(spark, lake):  # noqa: ANN001
    lake.append("t.types", frame(spark))
    back = lake.read("t.types")
    assert back.schema == SCHEMA
    # Maps cannot be sorted by Spark, so compare the rows ordered by key.
    assert sorted(back.collect()) == sorted(frame(spark).collect())
    assert_df_equality(back.drop("attrs"), frame(spark).drop("attrs"), ignore_row_order=True)


def _arrow_rows(rows=ROWS) -> list[dict]:  # noqa: ANN001
    """ROWS as pyarrow takes them: structs as dicts, maps as (key, value) lists."""
    out = []
    for r in rows:
        d = dict(zip(SCHEMA.fieldNames(), r))
        d["attrs"] = None if d["attrs"] is None else list(d["attrs"].items())
        d["addr"] = None if d["addr"] is None else dict(zip(["city", "pc"], d["addr"]))
        out.append(d)
    return out


def test_types_round_trip_through_the_arrow_paths(spark, lake):  # noqa: ANN001
    """Every type of SCHEMA (UTC and NTZ timestamps, dates, nulls, decimals, arrays, maps, structs)
    through the writes that go through Arrow instead of Spark's Parquet."""
    import pyarrow as pa

    expected = sorted(frame(spark).collect())
    # an Arrow table built on the driver (ingest parses files there)
    lake.append_arrow("t.arrow", pa.Table.from_pylist(_arrow_rows(), schema=to_arrow_schema(SCHEMA)), SCHEMA)
    back = lake.read("t.arrow")
    assert back.schema == SCHEMA
    assert sorted(back.collect()) == expected
    # a merge whose source fits: delta-rs merges it as one Arrow table
    lake.append("t.amerge", frame(spark, ROWS[1:2]))
    metrics = lake.merge("t.amerge", frame(spark), ["k"])
    if isinstance(lake.engine, DeltaRsEngine):
        assert (metrics["num_target_rows_updated"], metrics["num_target_rows_inserted"]) == (1, 2)  # the Arrow path
    back = lake.read("t.amerge")
    assert back.schema == SCHEMA
    assert sorted(back.collect()) == expected
    if isinstance(lake.engine, DeltaRsEngine):
        # Spark's frame as one Arrow table (delta-rs under Spark Connect, whose files are the server's)
        lake.engine._write_arrow(lake.path("t.frame"), frame(spark), "append", [])
        back = lake.read("t.frame")
        assert back.schema == SCHEMA
        assert sorted(back.collect()) == expected


def _commit(path: str, version: int) -> list[dict]:
    with open(os.path.join(path, "_delta_log", f"{version:020d}.json"), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_large_writes_never_go_through_the_driver(spark, lake_root, monkeypatch):  # noqa: ANN001
    """delta-rs: Spark writes the Parquet files into the table folder, delta-rs commits them."""
    engine = DeltaRsEngine(spark, arrow_merge_limit=100)
    lake = Lake(spark, str(lake_root), engine)
    big = spark.range(0, 1000, numPartitions=3).select(F.col("id").cast("string").alias("k"), F.col("id").alias("n"))
    assert 1000 > engine.arrow_merge_limit and not engine._fits_arrow(1000, big.schema)
    monkeypatch.setattr(type(big), "toArrow", lambda self: pytest.fail("a write collected its frame on the driver"))
    path = lake.path("t.big")

    def adds(version: int) -> list[dict]:
        found = [a["add"] for a in _commit(path, version) if "add" in a]
        for add in found:
            assert not os.path.isabs(add["path"]) and "_staging" not in add["path"], add["path"]
            assert os.path.isfile(os.path.join(path, add["path"]))
        return found

    lake.append("t.big", big)
    appended = lake.version("t.big")
    added = adds(appended)
    assert len(added) == 3  # one file per Spark task
    assert sum(json.loads(a["stats"])["numRecords"] for a in added) == 1000
    lake.overwrite("t.big", big.where("n < 600"))
    overwritten = _commit(path, appended + 1)
    assert {r["remove"]["path"] for r in overwritten if "remove" in r} == {a["path"] for a in added}
    assert sum(json.loads(a["stats"])["numRecords"] for a in adds(appended + 1)) == 600
    assert not os.path.exists(os.path.join(path, "_staging"))
    monkeypatch.undo()
    assert lake.read("t.big").count() == 600
    assert lake.read("t.big", version=appended).count() == 1000


def test_delta_rs_refuses_to_write_to_an_object_store(spark) -> None:  # noqa: ANN001
    with pytest.raises(DataError) as info:
        DeltaRsEngine(spark).write("s3a://bucket/lake/t/x", frame(spark), "append")
    assert str(info.value).startswith(
        "append s3a://bucket/lake/t/x: expected a local path or a mount for lake.root with the delta-rs engine: "
        "on s3a: every write would go through the driver as one Arrow table"
    )


def test_vacuum_keeps_what_the_retention_keeps(spark, lake):  # noqa: ANN001
    path = lake.path("t.vac")

    def data_files() -> set[str]:
        return {f for f in glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True) if "_delta_log" not in f}

    lake.append("t.vac", frame(spark, ROWS[:1]))
    first, first_files = lake.version("t.vac"), data_files()
    lake.overwrite("t.vac", frame(spark, ROWS[1:]))  # the first files are removed now, not deleted
    files = data_files()
    assert first_files and first_files < files
    for hours in (1, 0.5):  # removed seconds ago: kept (0.5 used to become 0 in delta-rs)
        lake.vacuum("t.vac", hours)
        assert data_files() == files, hours
        assert [r.k for r in lake.read("t.vac", version=first).collect()] == ["a"]
    lake.vacuum("t.vac", 0)
    assert data_files() == files - first_files
    assert sorted(r.k for r in lake.read("t.vac").collect()) == ["b", "c"]
    with pytest.raises(DataError, match=r"vacuum .*t/vac: got retention_hours -1; expected a finite number of hours >= 0"):
        lake.vacuum("t.vac", -1)


def test_create_append_overwrite_versions(spark, lake):  # noqa: ANN001
    lake.create("t.v", SCHEMA)
    assert lake.read("t.v").count() == 0
    v0 = lake.version("t.v")
    lake.append("t.v", frame(spark, ROWS[:1]))
    lake.append("t.v", frame(spark, ROWS[1:]))
    assert lake.read("t.v").count() == 3
    lake.overwrite("t.v", frame(spark, ROWS[2:]))
    assert [r.k for r in lake.read("t.v").collect()] == ["c"]
    assert lake.version("t.v") == v0 + 3
    assert sorted(r.k for r in lake.read("t.v", version=v0 + 1).collect()) == ["a"]
    assert len(lake.history("t.v")) == 4


def test_read_at_timestamp(spark, lake):  # noqa: ANN001
    lake.append("t.ts", frame(spark, ROWS[:1]))
    time.sleep(1.1)
    middle = dt.datetime.now(dt.timezone.utc)
    time.sleep(1.1)
    lake.append("t.ts", frame(spark, ROWS[1:]))
    assert lake.read("t.ts", timestamp=middle).count() == 1
    assert lake.read("t.ts").count() == 3


def test_merge_upsert_and_delete_not_matched(spark, lake):  # noqa: ANN001
    lake.append("t.m", frame(spark))
    src = frame(spark).where("k in ('a', 'z')").withColumn("n", F.lit(42).cast("long"))
    src = src.unionByName(frame(spark, [("z", 9, None, None, None, None, None, None, None)]))
    src = src.where("k != 'z' or n = 9")
    lake.merge("t.m", src, ["k"])
    got = {r.k: r.n for r in lake.read("t.m").collect()}
    assert got == {"a": 42, "b": None, "c": 3, "z": 9}
    lake.merge("t.m", src, ["k"], delete_not_matched_by_source=True)
    assert {r.k: r.n for r in lake.read("t.m").collect()} == {"a": 42, "z": 9}


def test_merge_into_an_empty_table_and_past_the_arrow_budget(spark, lake, monkeypatch):  # noqa: ANN001
    lake.create("t.e", frame(spark).schema)
    lake.merge("t.e", frame(spark), ["k"])  # nothing to match: an append
    assert sorted(r.k for r in lake.read("t.e").collect()) == ["a", "b", "c"]
    engine = lake.engine
    if isinstance(engine, DeltaRsEngine):
        # a source whose estimated Arrow size passes the budget is merged in Spark, never collected
        monkeypatch.setattr(delta_module, "ARROW_MERGE_BYTES", 1)
        monkeypatch.setattr(type(frame(spark)), "toArrow", lambda self: pytest.fail("merge collected its source"))
    src = frame(spark).where("k = 'b'").withColumn("n", F.lit(7).cast("long"))
    lake.merge("t.e", src, ["k"])
    assert {r.k: r.n for r in lake.read("t.e").collect()} == {"a": 1, "b": 7, "c": 3}


def test_merge_and_delete_by_key_rewrite_a_big_target_in_spark(spark, lake, monkeypatch):  # noqa: ANN001
    lake.append("t.big", frame(spark))
    engine = lake.engine
    if isinstance(engine, DeltaRsEngine):
        # a target whose estimated size passes the budget is never handed to a delta-rs merge
        monkeypatch.setattr(engine, "merge_rewrite_bytes", 1)
        monkeypatch.setattr("deltalake.DeltaTable.merge", lambda *a, **k: pytest.fail("delta-rs merged a big target"))
    src = frame(spark).where("k in ('b', 'z')").withColumn("n", F.lit(7).cast("long"))
    src = src.unionByName(frame(spark, [("z", 9, None, None, None, None, None, None, None)])).where("k != 'z' or n = 9")
    lake.merge("t.big", src, ["k"])
    assert {r.k: r.n for r in lake.read("t.big").collect()} == {"a": 1, "b": 7, "c": 3, "z": 9}
    before = lake.version("t.big")
    assert lake.delete_keys("t.big", "k", spark.createDataFrame([("q",)], "k string")) == 0
    if isinstance(engine, DeltaRsEngine):
        assert lake.version("t.big") == before  # no stored row has the key: nothing rewritten
    assert lake.delete_keys("t.big", "k", spark.createDataFrame([("a",), ("z",), ("a",)], "k string")) == 2
    assert {r.k: r.n for r in lake.read("t.big").collect()} == {"b": 7, "c": 3}
    assert sorted(r.k for r in lake.read("t.big", version=before).collect()) == ["a", "b", "c", "z"]


def test_estimated_row_bytes_bounds_the_real_arrow_size(spark) -> None:  # noqa: ANN001
    df = frame(spark)
    real = df.toArrow().nbytes / df.count()
    assert 0 < real <= estimated_row_bytes(df.schema)
    assert estimated_row_bytes(S.GOLDEN_PROFILES.schema) > 1024  # measured: about 1 KiB a profile at 1M persons


def test_read_difference_holds_every_row_that_differs(spark, lake):  # noqa: ANN001
    lake.append("t.rd", frame(spark, ROWS[:1]))  # a, in a file no later version rewrites
    lake.append("t.rd", frame(spark, ROWS[1:]))  # b and c
    before = lake.version("t.rd")
    lake.delete_keys("t.rd", "k", spark.createDataFrame([("c",)], "k string"))
    lake.append("t.rd", frame(spark, ROWS[2:]).withColumn("k", F.lit("d")))
    after = lake.version("t.rd")

    def rows(df):  # noqa: ANN001, ANN202
        return {(r.k, r.n) for r in df.collect()}

    old, new = lake.read_difference("t.rd", before, after)
    full_old, full_new = rows(lake.read("t.rd", version=before)), rows(lake.read("t.rd", version=after))
    # the rows only one version has are all there, on their side ...
    assert full_old - full_new <= rows(old) and full_new - full_old <= rows(new)
    assert rows(old) <= full_old and rows(new) <= full_new
    # ... and what both share either is left out or is on both sides (diffing drops it)
    assert (rows(old) & full_new) == (rows(new) & full_old)
    if lake.engine.name == "delta-rs":  # files both versions hold are not read
        assert "a" not in {k for k, _ in rows(old) | rows(new)}
    assert lake.read_difference("t.rd", after, after)[0].count() == (0 if lake.engine.name == "delta-rs" else 3)


def test_delete_by_predicate_and_by_keys(spark, lake):  # noqa: ANN001
    lake.append("t.d", frame(spark))
    assert lake.delete("t.d", "n = 3") == 1
    keys = spark.createDataFrame([("a",), ("nope",)], "k string")
    assert lake.delete_keys("t.d", "k", keys) == 1
    assert [r.k for r in lake.read("t.d").collect()] == ["b"]


def test_schema_is_enforced(spark, lake):  # noqa: ANN001
    lake.append("t.s", frame(spark))
    with pytest.raises(SchemaError, match=r"missing column\(s\) amount.*table columns: k, n"):
        lake.append("t.s", frame(spark).drop("amount"))
    with pytest.raises(SchemaError, match=r"column\(s\) not in the table: extra"):
        lake.append("t.s", frame(spark).withColumn("extra", F.lit(1)))


def test_add_column(spark, lake):  # noqa: ANN001
    lake.append("t.a", frame(spark))
    lake.add_column("t.a", "segment", StringType())
    back = lake.read("t.a")
    assert back.columns[-1] == "segment"
    assert back.where("segment is not null").count() == 0
    lake.append("t.a", frame(spark, ROWS[:1]).withColumn("segment", F.lit("vip")))
    assert [r.segment for r in lake.read("t.a").where("segment is not null").collect()] == ["vip"]


def test_partitioned_table(spark, lake):  # noqa: ANN001
    df = spark.createDataFrame([("a", "crm", 1), ("b", "pos", 2), ("c", "crm", 3)], "k string, src string, n long")
    lake.append("t.p", df, partition_by=["src"])
    lake.append("t.p", spark.createDataFrame([("d", "web", 4)], "k string, src string, n long"))
    back = lake.read("t.p")
    assert back.schema == df.schema
    assert sorted((r.k, r.src, r.n) for r in back.collect()) == [("a", "crm", 1), ("b", "pos", 2), ("c", "crm", 3), ("d", "web", 4)]


# Distinctive values: one in a row deleted by key (lives in a data file), one in a key deleted by
# predicate (the predicate is written into the commit, so it lives in _delta_log).
ERASED_VALUE = "Quxbertha-Zwolle-7731"
LOGGED_KEY = "zz-logged-key-9913"


def _files_holding(folder: str, needle: str) -> list[str]:
    """Files under ``folder`` whose bytes, or whose decoded Parquet values, contain ``needle``."""
    import pyarrow.parquet as pq

    hits = []
    for f in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)):
        if not os.path.isfile(f):
            continue
        with open(f, "rb") as fh:
            data = fh.read()
        if f.endswith(".parquet"):
            # Checkpoints and data files are compressed: search the values too.
            data += json.dumps(pq.read_table(f).to_pylist(), default=str).encode()
        if needle.encode() in data:
            hits.append(os.path.relpath(f, folder))
    return hits


def test_purge_history_leaves_only_the_checkpoint_and_no_deleted_value(spark, lake):  # noqa: ANN001
    rows = [ROWS[0][:7] + ({"note": ERASED_VALUE},) + ROWS[0][8:], ROWS[1], ROWS[2]]
    lake.append("t.e", frame(spark, rows))
    lake.append("t.e", frame(spark, [(LOGGED_KEY, 7, None, None, None, None, None, None, None)]))
    assert lake.delete_keys("t.e", "k", spark.createDataFrame([("a",)], "k string")) == 1
    assert lake.delete("t.e", f"k = '{LOGGED_KEY}'") == 1
    path = lake.path("t.e")
    log_dir = os.path.join(path, "_delta_log")
    # Before the purge both values are still on disk: the row in an old data file, the key in the log.
    assert _files_holding(path, ERASED_VALUE) and not any(f.startswith("_delta_log") for f in _files_holding(path, ERASED_VALUE))
    assert any(f.startswith("_delta_log") for f in _files_holding(path, LOGGED_KEY))

    lake.purge_history("t.e")

    with pytest.raises(Exception):  # noqa: B017 - old versions are gone
        lake.read("t.e", version=0).count()
    assert _files_holding(path, ERASED_VALUE) == []
    assert _files_holding(path, LOGGED_KEY) == []
    # The log: _last_checkpoint, the checkpoint, and commits at or after its version only.
    with open(os.path.join(log_dir, "_last_checkpoint"), encoding="utf-8") as fh:
        checkpoint = json.load(fh)["version"]
    names = sorted(os.listdir(log_dir))
    checkpoints = [n for n in names if ".checkpoint" in n]
    commits = [n for n in names if n.endswith(".json") and ".checkpoint" not in n]
    assert checkpoints and {int(n.split(".")[0]) for n in checkpoints} == {checkpoint}
    assert checkpoint >= 4  # after the two appends, both deletes and the purge's own commits
    assert commits and all(int(n.split(".")[0]) >= checkpoint for n in commits), names
    assert set(names) - set(checkpoints) - set(commits) <= {"_last_checkpoint"} | {n for n in names if n.endswith(".crc")}
    assert len(lake.history("t.e")) == len(commits) <= 3
    # Data files: only the remaining rows, and the table reads them.
    import pyarrow.parquet as pq

    keys = set()
    for f in glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True):
        if "_delta_log" not in f:
            keys |= set(pq.read_table(f).column("k").to_pylist())
    assert keys == {"b", "c"}
    assert sorted(r.k for r in lake.read("t.e").collect()) == ["b", "c"]
    # Normal retention is back for the next writes.
    lake.append("t.e", frame(spark, ROWS[:1]))
    assert lake.read("t.e").count() == 3


def test_delta_rs_purge_fails_when_old_log_files_survive(spark, lake_root, monkeypatch):  # noqa: ANN001
    from deltalake import DeltaTable

    lake = Lake(spark, str(lake_root), DeltaRsEngine(spark))
    lake.append("t.left", frame(spark, ROWS[:1]))
    lake.append("t.left", frame(spark, ROWS[1:]))
    monkeypatch.setattr(DeltaTable, "cleanup_metadata", lambda self: None)
    with pytest.raises(DataError, match=r"purge_history .*t/left: \d+ log file\(s\) older than the checkpoint at version \d+ survived"):
        lake.purge_history("t.left")


def test_delta_spark_purge_refuses_spark_connect() -> None:
    connect_session = type("SparkSession", (), {"__module__": "pyspark.sql.connect.session"})()
    with pytest.raises(DataError, match=r"purge_history /lake/t/x: got a Spark Connect session; .*lake.engine: delta-rs"):
        DeltaSparkEngine(connect_session).purge_history("/lake/t/x")


def test_log_has_no_min_max_statistics(spark, lake):  # noqa: ANN001
    lake.append("t.stats", frame(spark))
    lake.merge("t.stats", frame(spark, ROWS[:1]), ["k"])
    path = lake.path("t.stats")
    for f in glob.glob(os.path.join(path, "_delta_log", "*.json")):
        for line in open(f, encoding="utf-8"):
            entry = json.loads(line)
            if "add" in entry and entry["add"].get("stats"):
                stats = json.loads(entry["add"]["stats"])
                assert not stats.get("minValues") and not stats.get("maxValues"), stats


def test_tables_are_created_without_deletion_vectors(spark, lake):  # noqa: ANN001
    """A delete rewrites the files that held the rows: with deletion vectors (Databricks' default for
    new tables) the rows would stay in live data files, which no vacuum removes."""
    from deltalake import DeltaTable

    assert delta_module.TABLE_PROPERTIES["delta.enableDeletionVectors"] == "false"
    lake.append("t.nodv", frame(spark))
    lake.create("t.created", SCHEMA)
    for name in ("t.nodv", "t.created"):
        dt = DeltaTable(lake.path(name))  # delta-rs reads either engine's table
        assert dt.metadata().configuration.get("delta.enableDeletionVectors") == "false", name
        protocol = dt.protocol()
        assert "deletionVectors" not in set(protocol.reader_features or []) | set(protocol.writer_features or []), name
    import pyarrow.parquet as pq

    path = lake.path("t.nodv")
    held = {os.path.basename(a) for a in DeltaTable(path).file_uris() if "a" in pq.read_table(a.removeprefix("file://")).column("k").to_pylist()}
    assert len(held) == 1
    assert lake.delete_keys("t.nodv", "k", spark.createDataFrame([("a",)], "k string")) == 1
    assert sorted(r.k for r in lake.read("t.nodv").collect()) == ["b", "c"]
    for f in sorted(glob.glob(os.path.join(path, "_delta_log", "*.json"))):
        for line in open(f, encoding="utf-8"):
            entry = json.loads(line)
            assert not (entry.get("add") or {}).get("deletionVector"), f
    live = {os.path.basename(a) for a in DeltaTable(path).file_uris()}
    assert live and not live & held  # the file that held 'a' left the table (rewritten, not marked)


def test_tables_listing_and_bad_address(spark, lake):  # noqa: ANN001
    lake.append("silver.x", frame(spark, ROWS[:1]))
    lake.append("ops.y", frame(spark, ROWS[:1]))
    assert lake.tables() == ["ops.y", "silver.x"]
    with pytest.raises(DataError, match="expected 'layer.name'"):
        lake.path("nolayer")


def test_write_rows_without_spark_job(spark, lake):  # noqa: ANN001
    schema = StructType([StructField("run_id", StringType()), StructField("n", LongType())])
    lake.append_rows("ops.rows", [{"run_id": "r1", "n": 1}, {"run_id": "r2"}], schema)
    assert sorted((r.run_id, r.n) for r in lake.read("ops.rows").collect()) == [("r1", 1), ("r2", None)]


def test_refuses_deletion_vectors(spark, lake_root):  # noqa: ANN001
    from deltalake import DeltaTable
    from deltalake.table import TableFeatures

    lake = Lake(spark, str(lake_root), DeltaRsEngine(spark))
    lake.append("t.dv", frame(spark, ROWS[:1]))
    DeltaTable(lake.path("t.dv")).alter.add_feature(TableFeatures.DeletionVectors, allow_protocol_versions_increase=True)
    with pytest.raises(DataError, match="deletionVectors"):
        lake.read("t.dv")


def test_refuses_column_mapping(spark, lake_root, tmp_path):  # noqa: ANN001
    """A table delta-spark wrote with delta.columnMapping.mode=name keeps physical column names in its
    files; reading them by file list would give wrong columns, so the read is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable
    from deltalake.table import TableFeatures

    lake = Lake(spark, str(lake_root), DeltaRsEngine(spark))
    path = lake.path("t.cm")
    os.makedirs(os.path.join(path, "_delta_log"))
    pq.write_table(pa.table({"col-5f1c2d": ["a"]}), os.path.join(path, "part-0.parquet"))
    field = {"delta.columnMapping.id": 1, "delta.columnMapping.physicalName": "col-5f1c2d"}
    schema = {"type": "struct", "fields": [{"name": "k", "type": "string", "nullable": True, "metadata": field}]}
    actions = [
        {"protocol": {"minReaderVersion": 2, "minWriterVersion": 5}},
        {
            "metaData": {
                "id": "6b3a1a8e-0000-4000-8000-000000000001",
                "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps(schema),
                "partitionColumns": [],
                "configuration": {"delta.columnMapping.mode": "name", "delta.columnMapping.maxColumnId": "1"},
                "createdTime": 0,
            }
        },
        {"add": {"path": "part-0.parquet", "partitionValues": {}, "size": os.path.getsize(os.path.join(path, "part-0.parquet")),
                 "modificationTime": 0, "dataChange": True}},
    ]  # fmt: skip
    with open(os.path.join(path, "_delta_log", f"{0:020d}.json"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(a) for a in actions) + "\n")
    with pytest.raises(DataError) as info:
        lake.read("t.cm")
    assert str(info.value) == (
        f"table {path} uses columnMapping mode name; the delta-rs file-list read path cannot apply it. "
        "Read it with delta-spark (lake.engine: delta-spark) or rewrite it without them"
    )
    # a table-features protocol that lists column mapping as a reader feature
    lake.append("t.cmf", frame(spark, ROWS[:1]))
    DeltaTable(lake.path("t.cmf")).alter.add_feature(TableFeatures.ColumnMapping, allow_protocol_versions_increase=True)
    with pytest.raises(DataError, match=r"t/cmf uses columnMapping; the delta-rs file-list read path cannot apply it"):
        lake.read("t.cmf")
    with pytest.raises(DataError, match=r"uses columnMapping;"):
        lake.read_difference("t.cmf", 0, lake.version("t.cmf"))


def test_commit_conflicts_are_retried() -> None:
    from deltalake.exceptions import CommitFailedError

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise CommitFailedError("conflict")
        return "ok"

    assert retry_commit(flaky, "test") == "ok"
    assert len(calls) == 3
    with pytest.raises(DataError, match="commit failed 2 times"):
        retry_commit(lambda: (_ for _ in ()).throw(CommitFailedError("x")), "test", attempts=2)


def test_local_path_and_uri_scheme() -> None:
    from jobs.common.delta import local_path, uri_scheme

    assert [uri_scheme(x) for x in ("s3a://b/x", "dbfs:/mnt/lake", "abfss://c@a/x", "file:///tmp/x", "/tmp/x", "lake", "C:/lake")] == [
        "s3a", "dbfs", "abfss", "file", None, None, None,
    ]
    assert local_path("s3a://b/x") is None and local_path("dbfs:/mnt/lake") is None and local_path("gs://b") is None
    assert local_path("file:///tmp/x") == "/tmp/x" and local_path("file:/tmp/x") == "/tmp/x"
    assert local_path("/tmp/x/../y") == "/tmp/y"
    assert local_path("lake") == os.path.abspath("lake")
