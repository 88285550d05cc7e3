"""The erasure verification scan: Parquet values (nested too), JSON logs, gzip, encodings, groups."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.privacy.job import rewrite_files
from jobs.privacy.scan import TextNeedles, _groups, byte_forms, row_mask, scan_for_values

NEEDLES = [("jan.jansen@example.nl",), ("+31612345678",), ("Jan", "Jansen")]


def test_groups_lowercase_and_drop_too_short_single_needles() -> None:
    assert _groups([("Jan@X.NL",), ("abc",), ("Jan", "Jansen"), ("", "x")]) == [("jan", "jansen"), ("jan@x.nl",)]


def test_row_mask_reads_nested_values_and_requires_every_name_in_one_row() -> None:
    table = pa.table(
        {
            "given": ["Jan", "Piet", "Jan", None],
            "family": ["Jansen", "Jansen", "de Vries", None],
            "extra": pa.array(
                [[], [("mail", "piet@example.nl")], [], [("mail", "JAN.JANSEN@example.nl")]],
                type=pa.map_(pa.string(), pa.string()),
            ),
            "ids": pa.array([None, ["x"], ["+31612345678"], []]),
        }
    )
    assert row_mask(table, _groups(NEEDLES)).tolist() == [True, False, True, True]


def test_whole_words_only() -> None:
    table = pa.table({"name": ["Janssen Jan", "Jansen", "Jan-Jansen"]})
    assert row_mask(table, _groups([("Jan", "Jansen")])).tolist() == [False, False, True]


def test_scan_counts_hits_in_parquet_json_gzip_and_latin1(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    pq.write_table(pa.table({"e": ["jan.jansen@example.nl", "other@example.nl"]}), tmp_path / "t" / "part-0.parquet")
    (tmp_path / "t" / "00000.json").write_text(json.dumps({"add": {"stats": "{\"min\":\"+31612345678\"}"}}))
    (tmp_path / "x.json.gz").write_bytes(gzip.compress(b"jan.jansen@example.nl"))
    (tmp_path / "crm.csv").write_bytes("K1;Jan;Jansen\nK2;Piet;Jansen\n".encode("latin-1"))
    (tmp_path / "clean.csv").write_text("K2;Piet;Jansen\n")
    result = scan_for_values([str(tmp_path)], NEEDLES)
    assert result.files == 5
    assert result.hits == 5  # the gzip file holds the e-mail, which also spells "jan" and "jansen" as words
    assert sorted(Path(p).name for p in result.hit_files) == ["00000.json", "crm.csv", "part-0.parquet", "x.json.gz"]
    assert scan_for_values([str(tmp_path / "clean.csv")], NEEDLES).clean


def test_rewrite_files_drops_exact_lines_and_subject_lines_only(tmp_path: Path) -> None:
    csv = tmp_path / "crm.csv"
    csv.write_bytes("klantnummer;voornaam;achternaam\nK1;Jan;Jansen\nK2;Piet;Jansen\nK3;Els;Smit\n".encode("latin-1"))
    par = tmp_path / "m.parquet"
    pq.write_table(pa.table({"card": ["1", "2", "3"], "email": [None, "jan.jansen@example.nl", None]}), par)
    changed = rewrite_files([str(csv), str(par)], {str(csv): {4}, str(par): {1}}, _groups(NEEDLES))
    assert changed == {str(csv): 2, str(par): 2}
    assert csv.read_bytes().decode("latin-1") == "klantnummer;voornaam;achternaam\nK2;Piet;Jansen\n"
    assert pq.read_table(par).column("card").to_pylist() == ["3"]


def test_scan_roots_cover_exports_access_documents_and_mlflow_outside_the_lake(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    from jobs.privacy.job import scan_roots

    exports, access, extra, mlruns = (tmp_path / n for n in ("audiences", "access", "extra", "mlruns"))
    ctx = make_ctx(
        segments={"export_dir": str(exports)},
        privacy={"salt": "test-salt-123", "export_dir": str(access), "scan_extra_paths": [str(extra)]},
        mlflow={"tracking_uri": f"file://{mlruns}"},
    )
    lake, data = str(tmp_path / "lake"), str(tmp_path / "data")
    assert scan_roots(ctx) == [lake, data, str(access), str(exports), str(extra), str(mlruns)]
    # An audience file outside the lake is scanned.
    (exports / "seg" / "run").mkdir(parents=True)
    (exports / "seg" / "run" / "email_csv.csv").write_text("person_id,email\nP1,jan.jansen@example.nl\n", encoding="utf-8")
    result = scan_for_values(scan_roots(ctx), NEEDLES)
    assert result.hits > 0 and [Path(p).name for p in result.hit_files] == ["email_csv.csv"]


def test_scan_roots_default_exports_and_sqlite_mlflow_stay_under_the_lake(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    from jobs.privacy.job import scan_roots

    ctx = make_ctx(privacy={"salt": "test-salt-123"}, mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"})
    lake = str(tmp_path / "lake")
    assert scan_roots(ctx) == [lake, str(tmp_path / "data"), f"{lake}/privacy_exports", f"{lake}/exports", str(tmp_path / "ml")]


def test_row_mask_with_many_needles_agrees_with_a_per_needle_search() -> None:
    """The word index finds exactly what searching every value for every needle finds."""
    import random
    import re

    rng = random.Random(7)
    words = ["jan", "jansen", "de", "vries", "anne-marie", "jöris", "bakker", "smit", "o'neill", "06", "1234", "ab"]
    values = []
    for _ in range(400):
        k = rng.randint(0, 4)
        sep = rng.choice([" ", "-", ".", "@", "", "_", ", "])
        values.append(sep.join(rng.choice(words) for _ in range(k)) if k else None)
    needles = sorted({rng.choice(words) + rng.choice(["", " " + rng.choice(words), "@" + rng.choice(words)]) for _ in range(60)})
    groups = _groups([(x,) for x in needles if len(x) >= 5] + [(a, b) for a, b in zip(needles, needles[1:])] + [("-+-+-",)])
    values += ["x -+-+- y", "x-+-+-y"]
    table = pa.table({"v": values, "nested": pa.array([[v] if v else [] for v in values])})

    def occurs(x: str, v: str | None) -> bool:
        return v is not None and re.search(r"(?<![^\W_])" + re.escape(x) + r"(?![^\W_])", v.lower()) is not None

    expected = [any(all(occurs(x, v) for x in g) for g in groups) for v in values]
    assert sum(expected) > 20  # the case has hits and misses
    assert row_mask(table, groups).tolist() == expected


def test_text_needles_find_what_a_regex_per_needle_and_line_finds() -> None:
    """One Aho-Corasick pass gives the whole-word offsets and group lines of a search per needle,
    in UTF-8 and Latin-1 bytes alike."""
    import random
    import re

    rng = random.Random(11)
    words = ["jan", "jansen", "de", "vries", "anne-marie", "jöris", "bakker", "smit", "o'neill", "06", "1234", "ab", "é"]
    lines = []
    for _ in range(300):
        k = rng.randint(0, 5)
        sep = rng.choice([" ", "-", ".", "@", "", "_", ";", "\"", "é"])
        lines.append(sep.join(rng.choice(words) for _ in range(k)))
    needles = sorted({rng.choice(words) + rng.choice(["", " " + rng.choice(words), "@" + rng.choice(words)]) for _ in range(60)})
    groups = _groups([(x,) for x in needles if len(x) >= 5] + [(a, b) for a, b in zip(needles, needles[1:])])
    index = TextNeedles(groups)
    for encoding in ("utf-8", "latin-1"):
        low = "\n".join(lines).encode(encoding, errors="ignore").lower()
        raw_lines = low.split(b"\n")

        def at(x: str, data: bytes) -> set[int]:
            return {
                m.start()
                for form in byte_forms(x)
                for m in re.finditer(rb"(?<![A-Za-z0-9\x80-\xff])(?=" + re.escape(form) + rb"(?![A-Za-z0-9\x80-\xff]))", data)
            }

        found = index.offsets(low)
        every = {x for g in groups for x in g}
        assert {x: set(v) for x, v in found.items()} == {x: s for x in every if (s := at(x, low))}
        expected = {g: {n for n, line in enumerate(raw_lines, start=1) if all(at(x, line) for x in g)} for g in groups}
        expected = {g: s for g, s in expected.items() if s}
        assert sum(len(s) for s in expected.values()) > 20  # the case has hits and misses
        assert index.lines(low) == expected


def test_a_name_pair_another_row_spells_across_columns_is_held_there(spark) -> None:  # noqa: ANN001
    """At 100,000 persons a batch erasure failed its own scan: another person's profile spelled
    the subject's (given, family) pair with an e-mail address and a pet's name. Such a group is
    held by the remaining row, searched in every column, nested ones too, as whole words."""
    from jobs.privacy.job import _groups_in_rows

    rows = spark.createDataFrame(
        [
            ("P1", "willem.heyne@live.nl", {"pet_name": "Sam", "pet_species": "kat"}),
            ("P2", "samantha@willemstad.nl", {"pet_name": "Jansen"}),
        ],
        "person_id string, email string, extensions map<string,string>",
    )
    groups = _groups([("Sam", "Willem"), ("Jan", "Jansen"), ("kat", "heyne"), ("samantha", "Willemstad"), ("sam", "willemstad")])
    needles = sorted({x for g in groups for x in g})
    assert _groups_in_rows(rows, groups, needles) == {("sam", "willem"), ("heyne", "kat"), ("samantha", "willemstad")}


def test_places_that_are_not_local_paths_cannot_be_scanned(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    from jobs.privacy.job import _mlflow_folder, unscannable_locations

    ctx = make_ctx(privacy={"salt": "test-salt-123"})
    assert unscannable_locations(ctx) == []
    ctx.cfg.lake.root = "s3a://bucket/lake"  # what the config said; the context's lake is local here
    ctx.cfg.segments.export_dir = "abfss://exports@account.dfs.core.windows.net/audiences"
    ctx.cfg.privacy.export_dir = "/dbfs/mnt/access"  # a mounted path is local
    ctx.cfg.privacy.scan_extra_paths = [f"file://{tmp_path}/extra", "gs://bucket/side"]
    ctx.cfg.mlflow.tracking_uri = "http://user:secret@127.0.0.1:9"  # a server that does not answer
    problems = unscannable_locations(ctx)
    assert problems[:3] == [
        "lake.root 's3a://bucket/lake' (a s3a: location, not a local path)",
        "segments.export_dir 'abfss://exports@account.dfs.core.windows.net/audiences' (a abfss: location, not a local path)",
        "privacy.scan_extra_paths[1] 'gs://bucket/side' (a gs: location, not a local path)",
    ]
    assert problems[3].startswith("mlflow.tracking_uri 'http://user:***@127.0.0.1:9' (not a local store, and its API cannot be read: MlflowException: ")
    from jobs.privacy.job import _shown

    assert _shown("see https://token@h.example/x and s3a://k:s3cr3t@bucket/p, abfss://c@acct.dfs/x") == "see https://***@h.example/x and s3a://k:***@bucket/p, abfss://c@acct.dfs/x"
    assert len(problems) == 4 and "secret" not in problems[3]
    ctx.cfg.mlflow.tracking_uri = "databricks"  # no workspace configured here
    assert unscannable_locations(ctx)[3].startswith("mlflow.tracking_uri 'databricks' (not a local store, and its API cannot be read: ")
    for uri in ("databricks", "databricks-uc", "databricks://profile", "https://mlflow.example.com", "postgresql://db/mlflow"):
        assert _mlflow_folder(uri) is None, uri
    for uri, folder in ((f"sqlite:///{tmp_path}/ml/mlflow.db", tmp_path / "ml"), (f"file://{tmp_path}/mlruns", tmp_path / "mlruns"), (str(tmp_path / "mlruns"), tmp_path / "mlruns")):
        assert _mlflow_folder(uri) == str(folder), uri
        ctx.cfg.mlflow.tracking_uri = uri
        assert not any(p.startswith("mlflow") for p in unscannable_locations(ctx))


def test_an_mlflow_store_elsewhere_is_scanned_through_its_api(tmp_path: Path) -> None:
    """Runs' parameters and artifacts and registered models' descriptions, read through the API
    (here of a SQLite store, the code path of a tracking server or Databricks)."""
    from mlflow.tracking import MlflowClient

    from jobs.privacy.scan import scan_mlflow_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("cdp-match", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp).info.run_id
    client.log_param(run, "note", "trained after jan.jansen@example.nl complained")
    client.log_text(run, "called +31612345678", "notes/call.txt")
    client.log_metric(run, "f1", 0.9)
    client.set_terminated(run)
    client.create_registered_model("cdp-match", description="asked for by Jan Jansen")
    result = scan_mlflow_store(uri, NEEDLES, str(tmp_path / "scratch"), label="the store")
    assert sorted(result.hit_files) == ["the store: registered model cdp-match", f"the store: run {run}", f"the store: run {run} artifact notes/call.txt"]
    assert result.root_files == {"the store": result.files} and result.files == 5  # 2 experiments (Default too), run, artifact, model
    clean = scan_mlflow_store(uri, [("piet@example.nl",)], str(tmp_path / "scratch2"))
    assert clean.clean and clean.files == result.files
    # Limited to what the CDP writes: another team's experiment and model are neither read nor downloaded.
    other = client.create_experiment("team-x", artifact_location=str(tmp_path / "artifacts-x"))
    other_run = client.create_run(other).info.run_id
    client.log_text(other_run, "jan.jansen@example.nl", "theirs.txt")
    client.create_registered_model("team-x-model", description="Jan Jansen")
    client.create_registered_model("o'brien", description="Jan Jansen")
    ours = scan_mlflow_store(uri, NEEDLES, str(tmp_path / "scratch3"), label="the store", experiments=["cdp-match", "absent"], models=["cdp-match"])
    assert sorted(ours.hit_files) == sorted(result.hit_files) and ours.files == 4  # experiment, run, artifact, model
    quoted = scan_mlflow_store(uri, NEEDLES, str(tmp_path / "scratch4"), label="the store", experiments=[], models=["o'brien"])
    assert quoted.hit_files == ["the store: registered model o'brien"]
    everything = scan_mlflow_store(uri, NEEDLES, str(tmp_path / "scratch5"), label="the store")
    assert f"the store: run {other_run} artifact theirs.txt" in everything.hit_files


def test_a_scan_that_read_no_file_of_the_lake_verifies_nothing(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    from jobs.privacy.job import unverified_reason

    ctx = make_ctx(privacy={"salt": "test-salt-123"})
    lake = Path(ctx.lake_root)
    empty = scan_for_values([str(lake), str(tmp_path / "nowhere")], NEEDLES)
    assert (empty.files, empty.hits, empty.root_files) == (0, 0, {str(lake): 0, str(tmp_path / "nowhere"): 0})
    assert empty.clean  # no value found ...
    assert unverified_reason(ctx, empty) == f"the scan covered 0 file(s), none under lake.root {lake}; expected the lake's table files"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crm.csv").write_text("K2;Piet;Jansen\n", encoding="utf-8")
    elsewhere = scan_for_values([str(lake), str(tmp_path / "data")], NEEDLES)
    assert elsewhere.files == 1 and unverified_reason(ctx, elsewhere).startswith("the scan covered 1 file(s), none under lake.root")
    (lake / "silver").mkdir()
    (lake / "silver" / "part-0.json").write_text('{"e": "jan.jansen@example.nl"}', encoding="utf-8")
    found = scan_for_values([str(lake), str(tmp_path / "data")], NEEDLES)
    assert found.root_files == {str(lake): 1, str(tmp_path / "data"): 1}
    assert unverified_reason(ctx, found) == f"the scan found 2 value(s) in 1 file(s), first: ['{lake}/silver/part-0.json']; expected none"
    (lake / "silver" / "part-0.json").write_text('{"e": "piet@example.nl"}', encoding="utf-8")
    assert unverified_reason(ctx, scan_for_values([str(lake), str(tmp_path / "data")], NEEDLES)) is None


def test_zstd_files_are_searched_decompressed(tmp_path: Path) -> None:
    import zstandard

    text = b'{"e": "jan.jansen@example.nl"}\n'
    (tmp_path / "z").mkdir()
    frames = zstandard.ZstdCompressor().compress(text) + zstandard.ZstdCompressor().compress(b'{"e": "other"}\n')
    (tmp_path / "z" / "log.json.zst").write_bytes(frames)  # two frames, one stream
    (tmp_path / "plain.json").write_bytes(text + b'{"e": "other"}\n')
    result = scan_for_values([str(tmp_path / "z")], NEEDLES)
    plain = scan_for_values([str(tmp_path / "plain.json")], NEEDLES)
    assert plain.hits > 0
    assert (result.files, result.hits, result.unreadable) == (1, plain.hits, [])


def test_files_that_cannot_be_decoded_fail_the_verification(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    """A damaged compressed file searched as raw bytes would find nothing and prove nothing."""
    import zstandard

    from jobs.privacy.job import unverified_reason

    ctx = make_ctx(privacy={"salt": "test-salt-123"})
    lake = Path(ctx.lake_root)
    (lake / "t").mkdir(parents=True)
    (lake / "t" / "ok.csv").write_text("K2;Piet;Jansen\n", encoding="utf-8")
    whole = zstandard.ZstdCompressor().compress(b"jan.jansen@example.nl" * 50)
    broken = {
        "cut.json.gz": gzip.compress(b"jan.jansen@example.nl" * 50)[:20],
        "cut.json.zst": whole[: len(whole) // 2] + b"\x00" * 8,
        "part-9.parquet": b"PAR1 not really parquet",
    }
    for name, data in broken.items():
        (lake / "t" / name).write_bytes(data)
    result = scan_for_values([str(lake)], NEEDLES)
    assert result.files == 4 and result.hits == 0
    assert sorted(Path(p).name for p in result.unreadable) == sorted(broken)
    assert not result.clean
    reason = unverified_reason(ctx, result)
    assert reason.startswith("the scan could not decode 3 file(s), first: [") and reason.endswith(
        "expected every file readable (a compressed file searched as raw bytes proves nothing)"
    )
