"""Match job on ~40 hand-built silver.records rows; MLflow registration and loading."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.match import job, training

# (person, record fields); typos in names, dates and addresses, missing e-mails, a household of two people.
PEOPLE = {
    "anna": ("anna", "bakker", dt.date(1984, 3, 12), "1012 AB", "12", "damstraat", "amsterdam", "anna.bakker@mail.nl"),
    "bram": ("bram", "de jong", dt.date(1979, 7, 1), "3511 CD", "4", "oudegracht", "utrecht", "bram@dejong.nl"),
    "carla": ("carla", "visser", dt.date(1990, 11, 23), "2511 EF", "88", "spui", "den haag", "carla.v@post.nl"),
    "daan": ("daan", "mulder", dt.date(1965, 1, 30), "9711 GH", "7", "herestraat", "groningen", "daan.mulder@web.nl"),
    "eva": ("eva", "smit", dt.date(2001, 6, 5), "5611 IJ", "101", "stratumseind", "eindhoven", "eva.smit@uni.nl"),
    "finn": ("finn", "bos", dt.date(1972, 9, 14), "6811 KL", "3", "jansbinnensingel", "arnhem", "finn.bos@mail.nl"),
    "gijs": ("gijs", "meijer", dt.date(1988, 2, 29), "7511 MN", "15", "oude markt", "enschede", "gijs@meijer.nl"),
    "hanna": ("hanna", "vos", dt.date(1995, 12, 2), "8011 OP", "22", "diezerstraat", "zwolle", "hanna.vos@mail.nl"),
    "ivo": ("ivo", "peters", dt.date(1958, 4, 18), "4811 QR", "9", "ginnekenweg", "breda", "ivo.peters@kpn.nl"),
    "jet": ("jet", "hendriks", dt.date(1983, 8, 8), "6211 ST", "31", "vrijthof", "maastricht", "jet.h@gmail.com"),
    # household: same family name and address as anna, another person
    "kees": ("kees", "bakker", dt.date(1950, 5, 20), "1012 AB", "12", "damstraat", "amsterdam", None),
    "lotte": ("lotte", "dekker", dt.date(1999, 10, 10), "1071 UV", "5", "museumplein", "amsterdam", "lotte@dekker.nl"),
}


def _variants(p: str) -> list[dict]:
    g, f, b, pc, hn, st, city, email = PEOPLE[p]
    base = dict(given_name_match=g, family_name_match=f, birth_date=b, postcode=pc, house_number=hn, street=st,
                city_match=city, email=email)
    typo = {**base, "given_name_match": g[:-2] + g[-1] + g[-2]}  # swapped last letters
    fam_typo = {**base, "family_name_match": f[:-1] + ("x" if f[-1] != "x" else "y"), "email": None}
    moved = {**base, "house_number": str(int(hn) + 1), "street": st[:-1] + ("x" if st[-1] != "x" else "y")}
    date_typo = {**base, "birth_date": b.replace(day=min(b.day + 1, 28)), "email": None}
    return {
        "anna": [base, typo, fam_typo, moved], "bram": [base, typo, date_typo], "carla": [base, fam_typo, moved],
        "daan": [base, typo, date_typo, fam_typo], "eva": [base, typo], "finn": [base, moved, date_typo],
        "gijs": [base, fam_typo], "hanna": [base, typo, moved], "ivo": [base, date_typo, typo],
        "jet": [base, fam_typo, typo, moved], "kees": [base, typo], "lotte": [base],
    }[p]


def _records() -> tuple[list[dict], dict[str, str]]:
    rows, truth = [], {}
    i = 0
    for p in PEOPLE:
        for v in _variants(p):
            i += 1
            key = f"r{i:02d}"
            rows.append({"record_key": key, "source": "crm" if i % 2 else "shop", "source_id": key, **v})
            truth[key] = p
    # a married-name record of lotte: no name or address agreement, linked by her customer number
    i += 1
    rows.append({"record_key": f"r{i:02d}", "source": "shop", "source_id": "x", "given_name_match": "lot",
                 "family_name_match": "vermeulen", "birth_date": dt.date(1989, 1, 1), "postcode": "3000 AA"})
    truth[f"r{i:02d}"] = "lotte"
    return rows, truth


@pytest.fixture()
def lake_ctx(spark, make_ctx):  # noqa: ANN001, ANN201
    rows, truth = _records()
    ctx = make_ctx(match={"training": {"u_sample_pairs": 1000}})
    full = [{c: r.get(c) for c in S.SILVER_RECORDS.column_names} for r in rows]
    ctx.lake.overwrite(S.SILVER_RECORDS.address, spark.createDataFrame(full, S.SILVER_RECORDS.schema))
    lotte = [r["record_key"] for r in rows if truth[r["record_key"]] == "lotte"]
    ids = [(lotte[0], "customer_number", "C-77", "crm"), (lotte[1], "customer_number", "C-77", "shop")]
    ctx.lake.overwrite(S.SILVER_IDENTIFIERS.address, spark.createDataFrame(ids, S.SILVER_IDENTIFIERS.schema))
    return ctx, truth


def test_run_gives_exact_clusters(lake_ctx, spark) -> None:  # noqa: ANN001
    ctx, truth = lake_ctx
    assert len(truth) == 35
    summary = job.run(ctx)
    assert summary["model_version"] == "1"  # trained first: nothing was registered
    got = {r["record_key"]: r["cluster_id"] for r in ctx.lake.read(S.MATCH_CLUSTERS.address).collect()}
    expected = {k: min(k2 for k2, p2 in truth.items() if p2 == p) for k, p in truth.items()}
    assert got == expected
    assert summary["clusters"] == len(PEOPLE)
    assert summary["edges_identifier_customer_number"] == 1
    pairs = ctx.lake.read(S.MATCH_PAIRS.address)
    assert pairs.count() == summary["pairs"]
    assert pairs.where(F.col("model_version") != "1").count() == 0
    run = ctx.lake.read(S.OPS_RUNS.address).where("job = 'match' and status = 'succeeded'").collect()
    assert len(run) == 1 and run[0]["metrics"]["clusters"] == str(len(PEOPLE))


def test_train_register_and_load_by_version_and_alias(lake_ctx, make_ctx) -> None:  # noqa: ANN001
    ctx, _ = lake_ctx
    result = training.train(ctx)
    assert result.version == "1"
    client = training._client(ctx)
    assert training.register(client, "cdp-match", result.run_id) == "2"
    client.set_registered_model_alias("cdp-match", "champion", "1")
    model, version = training.load_model(ctx)
    assert version == "2" and model == result.model
    ctx_v = make_ctx(match={"training": {"u_sample_pairs": 1000}, "model": {"version": 1}})
    assert training.load_model(ctx_v)[1] == "1"
    ctx_a = make_ctx(match={"training": {"u_sample_pairs": 1000}, "model": {"alias": "champion"}})
    assert training.load_model(ctx_a) == (result.model, "1")
    run = client.get_run(result.run_id)
    assert run.data.metrics["prior"] == pytest.approx(result.model.prior)
    assert "m.given_name.5_exact" in run.data.metrics
    arts = os.path.join(ctx.mlflow_artifacts)
    found = {f for _, _, files in os.walk(arts) for f in files}
    assert {"model.json", "m_u_per_comparison.png", "match_weight_distribution.png"} <= found
    text = result.model.to_json() + repr(run.data.params)
    assert "bakker" not in text and "damstraat" not in text  # no record values


def test_a_run_that_trains_scores_trainings_levels_to_the_bit(lake_ctx, caplog) -> None:  # noqa: ANN001
    """The first run trains, keeps the candidates' levels and scores those; the second loads the
    registered version and scores from scratch: the same pairs, weights and levels to the bit.
    The charts are logged in the background, and the MLflow run ends FINISHED once they are."""
    ctx, _ = lake_ctx

    def pairs() -> dict:
        return {
            (r["record_key_l"], r["record_key_r"]): (
                r["match_weight"], r["match_probability"], dict(r["levels"]), dict(r["weights"]), r["blocking_rule"]
            )
            for r in ctx.lake.read(S.MATCH_PAIRS.address).collect()
        }

    with caplog.at_level("INFO", logger="jobs.match.job"):
        first = job.run(ctx)
    assert any("scoring the levels training computed" in m for m in caplog.messages)
    trained = pairs()
    caplog.clear()
    with caplog.at_level("INFO", logger="jobs.match.job"):
        second = job.run(ctx)
    assert not any("scoring the levels training computed" in m for m in caplog.messages)
    assert first["model_version"] == second["model_version"] == "1"
    assert len(trained) == first["pairs"] > 0
    assert pairs() == trained
    client = training._client(ctx)
    run = client.search_model_versions("name='cdp-match'")[0].run_id
    assert client.get_run(run).info.status == "FINISHED"
    listed = {a.path for a in client.list_artifacts(run, "charts")}
    assert listed == {"charts/m_u_per_comparison.png", "charts/match_weight_distribution.png"}


def _key(rows: list[dict], person: str, variant: int) -> str:
    return [r["record_key"] for r in rows if r["source_id"] != "x" and _PERSON_OF[r["record_key"]] == person][variant]


_ROWS, _PERSON_OF = _records()


def test_labelled_pairs_seed_or_fix_m_through_fit(lake_ctx, make_ctx, tmp_path) -> None:  # noqa: ANN001
    """read_labels -> fit: the labelled matches give m (fix: kept as they are; seed: EM's start);
    non-matches are ignored and a pair may be given in either order."""
    from jobs.match.model import m_from_labels

    ctx, _ = lake_ctx
    def k(person: str, variant: int) -> str:
        return _key(_ROWS, person, variant)

    # variants as _variants lists them: bram base, typo, date_typo; ivo base, date_typo, typo; finn base, moved, ...
    labels = [
        (k("bram", 0), k("bram", 1), "true"),  # birth date exact, e-mail exact
        (k("bram", 2), k("bram", 0), "true"),  # reversed; birth date one typo, e-mail missing on one side
        (k("ivo", 0), k("ivo", 1), "true"),  # birth date one typo, e-mail missing
        (k("finn", 0), k("finn", 1), "true"),  # birth date exact, e-mail exact
        (k("anna", 0), k("kees", 0), "false"),  # one household, two people: not a match
    ]
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "labels.csv").write_text("record_key_l,record_key_r,is_match\n" + "".join(f"{a},{b},{m}\n" for a, b, m in labels))
    records = ctx.lake.read(S.SILVER_RECORDS.address)

    def fitted(mode: str | None):  # noqa: ANN202
        training_cfg = {"u_sample_pairs": 1000} | ({"labels_path": "labels.csv", "labels_mode": mode} if mode else {})
        c = make_ctx(match={"training": training_cfg})
        got = training.read_labels(c)
        assert (got is None) == (mode is None)
        return training.fit(records, c.cfg.match, labels=got).model

    fix = fitted("fix")
    assert fix.metrics["labelled_matches"] == 4
    birth, email = fix.comparison("birth_date"), fix.comparison("email")
    assert birth.labels == ["null", "else", "same_year", "day_month_swapped", "one_character_typo", "exact"]
    assert birth.m[1:] == pytest.approx([0, 0, 0, 0.5, 0.5], abs=1e-5)  # 2 exact, 2 one typo
    assert email.m[1:] == pytest.approx([0, 0, 1], abs=1e-5)  # both pairs with two e-mails agree exactly
    assert min(birth.m[1:]) > 0  # floored at m_floor, so no level has weight minus infinity

    seeded, unlabelled = fitted("seed"), fitted(None)
    assert seeded.metrics["labelled_matches"] == 4 and unlabelled.metrics["labelled_matches"] == 0
    for model in (fix, seeded, unlabelled):
        assert all(sum(c.m[1:]) == pytest.approx(1.0) for c in model.comparisons)
    # seeding starts EM from the labels' m, which it then moves; fix keeps them
    assert seeded.comparison("birth_date").m != birth.m
    assert [c.m for c in seeded.comparisons] != [c.m for c in unlabelled.comparisons]


def test_run_skips_and_reports_oversized_blocks_without_values(lake_ctx, make_ctx) -> None:  # noqa: ANN001
    """Blocks above max_block_size make no pairs; the run writes them to match.skipped_blocks by
    salted hash and size and counts them per rule in its metrics, never with a key value."""
    from collections import Counter

    ctx, _ = lake_ctx
    rules = [{"name": "family", "keys": ["family_name_match"]}, {"name": "city", "keys": ["city_match"]}]
    ctx = make_ctx(match={"training": {"u_sample_pairs": 1000}, "blocking_rules": rules, "max_block_size": 3})
    expected = {}
    for rule, column in (("family", "family_name_match"), ("city", "city_match")):
        sizes = Counter(r.get(column) for r in _ROWS if (r.get(column) or "").strip())
        expected[rule] = sorted(n for n in sizes.values() if n > 3)
    assert expected["family"] and expected["city"]  # e.g. bakker (anna and kees), amsterdam
    summary = job.run(ctx)
    assert summary["skipped_blocks"] == len(expected["family"]) + len(expected["city"])
    assert (summary["skipped_blocks_family"], summary["skipped_blocks_city"]) == (len(expected["family"]), len(expected["city"]))
    table = ctx.lake.read(S.MATCH_SKIPPED_BLOCKS.address).collect()
    got: dict[str, list[int]] = {}
    for row in table:
        got.setdefault(row["blocking_rule"], []).append(row["size"])
    assert {k: sorted(v) for k, v in got.items()} == expected
    assert len({r["key_hash"] for r in table}) == len(table) and all(len(r["key_hash"]) == 64 for r in table)
    assert {r["run_id"] for r in table} == {summary_run_id(ctx)}
    # no candidate pair comes from a skipped block: the pairs of a rule all lie in blocks of at most 3
    pairs = ctx.lake.read(S.MATCH_PAIRS.address).collect()
    keys = {r["record_key"]: r for r in _ROWS}
    for p in pairs:
        column = {"family": "family_name_match", "city": "city_match"}[p["blocking_rule"]]
        value = keys[p["record_key_l"]][column]
        assert sum(1 for r in _ROWS if r.get(column) == value) <= 3, p
    run = ctx.lake.read(S.OPS_RUNS.address).where("job = 'match' and status = 'succeeded'").collect()[-1]
    assert run["metrics"]["skipped_blocks_city"] == str(len(expected["city"]))
    values = {str(r.get(c)) for r in _ROWS for c in ("family_name_match", "city_match") if r.get(c)}
    text = repr([r.asDict() for r in table]) + repr(dict(run["metrics"])) + repr(summary)
    assert not [v for v in values if v in text]


def summary_run_id(ctx) -> str:  # noqa: ANN001
    """run_id of the last succeeded match run."""
    runs = ctx.lake.read(S.OPS_RUNS.address).where("job = 'match' and status = 'succeeded'").collect()
    return max(runs, key=lambda r: r["started_at"])["run_id"]
