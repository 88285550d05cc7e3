"""Run Splink 5 on one benchmark input, timing each phase; meant to run in its own process.

    python -m bench.splink_runner --backend spark|duckdb --model febrl4|febrl3|generated \
        --input <splink_input.parquet> --out <dir> [--threshold 0.5] [--seed 42]

The parent (bench/run_all.py) runs this as a child so that wall time and peak memory cover the
whole process tree (Python, the JVM, DuckDB threads). The child writes into ``--out``:
``predictions.parquet`` (unique_id_l, unique_id_r, match_probability, match_weight; every pair at
or above the threshold), ``clusters.parquet`` (unique_id, cluster_id at the threshold),
``timings.json`` (seconds per phase) and ``model.json`` (the trained Splink model).

The models are Splink's own FEBRL examples (docs/demos/examples/duckdb/febrl3 and febrl4 in the
Splink repository): name comparisons with Jaro-Winkler levels and term-frequency adjustments,
date of birth, social security id, street number and postcode; the same blocking rules,
deterministic rules for the prior, ``estimate_u_using_random_sampling`` and two EM sessions (date
of birth, postcode). Generated data gets the model a Splink user would write for it
(:func:`generated_model`).

Spark: a local session with the settings our jobs use (conf/local.yaml: master, shuffle
partitions, driver memory; UI off). Splink's Jaro-Winkler and Damerau-Levenshtein are Scala UDFs
from scala-udf-similarity; the jar ships inside the splink wheel
(``splink.backends.spark.similarity_jar_location()``) and is put on ``spark.jars`` from that local
path, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PhaseTimer:
    """Wall seconds per named phase, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            print(f"[splink] {name}: {self.seconds[name]:.2f}s", flush=True)


# --- models -----------------------------------------------------------------------------------


def _date_format(backend: str, compact: bool) -> str:
    """Date pattern in the backend's own syntax: DuckDB strptime vs Spark's Java DateTimeFormatter.

    Splink passes ``datetime_format`` straight into the SQL (``try_strptime`` / ``try_to_timestamp``),
    so the same model needs '%Y%m%d' on DuckDB and 'yyyyMMdd' on Spark.
    """
    if backend == "spark":
        return "yyyyMMdd" if compact else "yyyy-MM-dd"
    return "%Y%m%d" if compact else "%Y-%m-%d"


def febrl4_model(backend: str) -> dict[str, Any]:
    """Splink's FEBRL4 'detailed model' (link_only), as in its febrl4 example."""
    import splink.comparison_library as cl
    from splink import block_on

    return {
        "link_type": "link_only",
        "blocking_rules": [
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("state", "address_1"),
            block_on("street_number", "address_1"),
            block_on("postcode"),
        ],
        "comparisons": [
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format=_date_format(backend, compact=True),
                invalid_dates_as_null=True,
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
        ],
        "deterministic_rules": [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")],
        "recall": 0.8,
        "u_max_pairs": 1e6,
        "em_rules": [block_on("date_of_birth"), block_on("postcode")],
        "em_without_tf": True,
        "em_max_pairs": None,
    }


def febrl3_model(backend: str) -> dict[str, Any]:
    """Splink's FEBRL3 model (dedupe_only), as in its febrl3 example."""
    import splink.comparison_library as cl
    from splink import block_on

    return {
        "link_type": "dedupe_only",
        "blocking_rules": [
            block_on("soc_sec_id"),
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("postcode"),
        ],
        "comparisons": [
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format=_date_format(backend, compact=True)
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        ],
        "deterministic_rules": [
            block_on("soc_sec_id"),
            block_on("given_name", "surname", "date_of_birth"),
            "l.given_name = r.surname and l.surname = r.given_name and l.date_of_birth = r.date_of_birth",
        ],
        "recall": 0.9,
        "u_max_pairs": 1e6,
        "em_rules": [block_on("date_of_birth"), block_on("postcode")],
        "em_without_tf": False,
        "em_max_pairs": None,
    }


def generated_model(backend: str) -> dict[str, Any]:
    """The model a competent Splink user writes for our generated customers (bench/inputs.py columns).

    The data (jobs/ingest/generate.py): persons live in households that share an address, often a
    family name and sometimes a family e-mail address and a landline; people move, marry and change
    e-mail addresses; web-cookie records carry only the customer number they logged in with. So:

    * Prior (deterministic rules): the customer number (an account: two records with one are one
      person) and given name + family name + birth date; recall 0.45 (on gen5k's ground truth these
      two rules find 0.43 of the true pairs). Never the e-mail address: a family address is shared.
    * Blocking for predictions: names and birth dates in combinations, e-mail, the phone's last nine
      digits, postcode with the given name (a married name at the old address), the first three
      letters of the family name with the postcode's first four characters, the customer number.
      No rule on the address alone: it makes every household pair a candidate.
    * Comparisons: given and family name (Splink's NameComparison: exact, Jaro-Winkler 0.92 /
      0.88 / 0.7, term-frequency adjusted), names swapped, birth date (DateOfBirthComparison),
      e-mail, phone (exact, last nine digits), the customer number, and the
      address as one comparison (same address, same street, same city with the city's term
      frequency, same postcode area): postcode, house number, street and city compared separately
      count one household fact four times. Above those, "same address, another given name" (Jaro-
      Winkler below 0.7): the shared address of two household members is its own level, with its
      own m and u, so it does not add the full weight of one person's address to theirs.
    * E-mail: exact (term-frequency adjusted: a family address is held by several people) and the
      same local part; no fuzzy level, which in a household ("r.jansen@", "f.jansen@") is no
      evidence of one person.
    * The customer number is an account: its u is fixed at 1e-9, not sampled (random pairs count
      the records of one account as chance agreement: u 1e-4 at 5,000 persons, every one of them a
      true match), so a web cookie that logged in links to its customer.
    * Training: u from 10 million random pairs; m by EM on given + family name (estimates
      everything but the names) and on birth date (estimates the names); neither blocks on the
      address, where most pairs are two members of one household and the "match" class of EM
      becomes "same household". ``max_pairs`` bounds each EM session at 1,000,000 persons.

    Comparison-level SQL names the sides with Splink's ``_l``/``_r`` suffixes (blocking rules use
    ``l.``/``r.``); Splink 5 rejects ``l.column`` there. The loyalty card is left out: only one
    source has it, and it never repeats there.
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import block_on

    def levels(name: str, null_sql: str, steps: list[Any]) -> Any:
        return cl.CustomComparison(
            output_column_name=name,
            comparison_levels=[cll.CustomLevel(null_sql).configure(is_null_level=True), *steps, cll.ElseLevel()],
        )

    same = "{c}_l = {c}_r".format
    same_address = (
        f"({same(c='postcode')} and {same(c='house_number')}) or "
        f"({same(c='street')} and {same(c='house_number')} and {same(c='city')})"
    )
    address = levels(
        "address",
        "(postcode_l is null or postcode_r is null) and (street_l is null or street_r is null)",
        [
            # two people of one household: the address is shared, the given names differ. Its own
            # level, so that a shared address weighs little when the given names already disagree
            # (the comparisons are otherwise taken as independent, and both count)
            cll.And(cll.CustomLevel(same_address), cll.Not(cll.JaroWinklerLevel("given_name", 0.7))).configure(
                label_for_charts="same address, another given name"
            ),
            cll.CustomLevel(same_address, "same address"),
            cll.CustomLevel(f"{same(c='postcode')} or ({same(c='street')} and {same(c='city')})", "same street"),
            cll.CustomLevel(same(c="city"), "same city").configure(
                tf_adjustment_column="city", tf_adjustment_weight=1.0, disable_tf_exact_match_detection=True
            ),
            cll.CustomLevel("substr(postcode_l, 1, 4) = substr(postcode_r, 1, 4)", "same postcode area"),
        ],
    )
    return {
        "link_type": "dedupe_only",
        "blocking_rules": [
            block_on("given_name", "family_name"),
            "l.birth_date = r.birth_date and substr(l.family_name, 1, 3) = substr(r.family_name, 1, 3)",
            block_on("birth_date", "given_name"),
            block_on("email"),
            "right(l.phone, 9) = right(r.phone, 9)",
            block_on("postcode", "given_name"),
            "substr(l.family_name, 1, 3) = substr(r.family_name, 1, 3) and substr(l.postcode, 1, 4) = substr(r.postcode, 1, 4)",
            block_on("customer_number"),
        ],
        "comparisons": [
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("family_name").configure(term_frequency_adjustments=True),
            levels(
                "name_swap",
                "given_name_l is null or given_name_r is null or family_name_l is null or family_name_r is null",
                [cll.ColumnsReversedLevel("given_name", "family_name")],
            ),
            cl.DateOfBirthComparison(
                "birth_date", input_is_string=True, datetime_format=_date_format(backend, compact=False),
                invalid_dates_as_null=True,
            ),
            levels(
                "email", "email_l is null or email_r is null",
                [
                    cll.ExactMatchLevel("email", term_frequency_adjustments=True),
                    cll.CustomLevel("split_part(email_l, '@', 1) = split_part(email_r, '@', 1)", "same local part"),
                ],
            ),
            levels(
                "phone", "phone_l is null or phone_r is null",
                [cll.ExactMatchLevel("phone"), cll.CustomLevel("right(phone_l, 9) = right(phone_r, 9)", "last nine digits")],
            ),
            address,
            levels(
                "customer_number", "customer_number_l is null or customer_number_r is null",
                [cll.ExactMatchLevel("customer_number").configure(u_probability=1e-9, fix_u_probability=True)],
            ),
        ],
        "deterministic_rules": [block_on("customer_number"), block_on("given_name", "family_name", "birth_date")],
        "recall": 0.45,
        "u_max_pairs": 1e7,
        "em_rules": [block_on("given_name", "family_name"), block_on("birth_date")],
        "em_without_tf": True,
        "em_max_pairs": 5e6,
    }


MODELS: dict[str, Callable[[str], dict[str, Any]]] = {
    "febrl4": febrl4_model,
    "febrl3": febrl3_model,
    "generated": generated_model,
}


# --- backends ---------------------------------------------------------------------------------


def _our_spark_settings() -> dict[str, Any]:
    """master, shuffle partitions and driver memory from conf/local.yaml (what our jobs use)."""
    settings: dict[str, Any] = {"master": "local[2]", "shuffle_partitions": 8, "driver_memory": "6g"}
    path = os.path.join(REPO, "conf", "local.yaml")
    try:
        import yaml

        with open(path, encoding="utf-8") as fh:
            spark = (yaml.safe_load(fh) or {}).get("spark") or {}
        for key in settings:
            if spark.get(key) is not None:
                settings[key] = spark[key]
    except OSError:
        pass
    return settings


def spark_session(work_dir: str) -> Any:
    """A local session like ours, plus Splink's similarity jar from the installed wheel."""
    from splink.backends.spark import similarity_jar_location

    jar = similarity_jar_location()
    if not os.path.exists(jar):
        raise FileNotFoundError(f"Splink's similarity jar is not in the wheel at {jar}")
    s = _our_spark_settings()
    extra = {"spark.jars": jar, "spark.local.dir": os.path.join(work_dir, "spark-tmp")}
    checkpoint = os.path.join(work_dir, "checkpoints")
    warehouse = os.path.join(work_dir, "warehouse")
    try:
        from jobs.common.spark import build_local_session
    except ImportError:
        build_local_session = None  # type: ignore[assignment]
    if build_local_session is not None:
        return build_local_session(
            app_name="bench-splink",
            master=s["master"],
            shuffle_partitions=int(s["shuffle_partitions"]),
            checkpoint_dir=checkpoint,
            warehouse_dir=warehouse,
            driver_memory=s["driver_memory"],
            extra_conf=extra,
        )
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(s["master"]).appName("bench-splink")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(s["shuffle_partitions"]))
        .config("spark.driver.memory", s["driver_memory"])
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.sql.session.timeZone", "UTC")
    )
    for k, v in extra.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(checkpoint)
    return spark


def _frames_for(model: dict[str, Any], df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """link_only needs one table per source; dedupe_only takes the single table."""
    if model["link_type"] == "link_only":
        return [(str(src), part.drop(columns=["source"])) for src, part in df.groupby("source", sort=True)]
    return [("records", df.drop(columns=["source"]))]


def run(backend: str, model_name: str, input_path: str, out_dir: str, threshold: float, seed: int) -> dict[str, Any]:
    """Train, predict and cluster with Splink; write outputs; return the timings."""
    from splink import Linker, SettingsCreator

    os.makedirs(out_dir, exist_ok=True)
    timer = PhaseTimer()
    model = MODELS[model_name](backend)
    t_start = time.perf_counter()

    with timer.phase("session"):
        if backend == "spark":
            from splink import SparkAPI

            spark = spark_session(out_dir)
            db_api = SparkAPI(spark_session=spark)
        else:
            import duckdb
            from splink import DuckDBAPI

            con = duckdb.connect()
            con.execute(f"SET temp_directory='{os.path.join(out_dir, 'duckdb-tmp')}'")
            db_api = DuckDBAPI(connection=con)

    with timer.phase("load"):
        df = pd.read_parquet(input_path)
        tables = [db_api.register(frame, dataset_display_name=name) for name, frame in _frames_for(model, df)]
        settings = SettingsCreator(
            unique_id_column_name="unique_id",
            link_type=model["link_type"],
            blocking_rules_to_generate_predictions=model["blocking_rules"],
            comparisons=model["comparisons"],
            retain_matching_columns=False,
            retain_intermediate_calculation_columns=False,
        )
        linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=logging.WARNING)

    with timer.phase("train"):
        linker.training.estimate_probability_two_random_records_match(
            model["deterministic_rules"], recall=model["recall"]
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=model["u_max_pairs"], seed=seed)
        for rule in model["em_rules"]:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=model["em_without_tf"], max_pairs=model["em_max_pairs"]
            )

    with timer.phase("predict"):
        predictions = linker.inference.predict(threshold_match_probability=threshold)

    with timer.phase("cluster"):
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=threshold
        )

    with timer.phase("export"):
        pred_cols = ["unique_id_l", "unique_id_r", "match_probability", "match_weight"]
        pred_path = os.path.join(out_dir, "predictions.parquet")
        clus_path = os.path.join(out_dir, "clusters.parquet")
        if backend == "spark":
            predictions.as_spark_dataframe().select(*pred_cols).toPandas().to_parquet(pred_path, index=False)
            clusters.as_spark_dataframe().select("unique_id", "cluster_id").toPandas().to_parquet(clus_path, index=False)
        else:
            predictions.as_duckdbpyrelation().select(", ".join(pred_cols)).df().to_parquet(pred_path, index=False)
            clusters.as_duckdbpyrelation().select("unique_id, cluster_id").df().to_parquet(clus_path, index=False)
        linker.misc.save_model_to_json(os.path.join(out_dir, "model.json"), overwrite=True)

    seconds = dict(timer.seconds)
    seconds["total_in_process"] = time.perf_counter() - t_start
    seconds["train_plus_predict"] = seconds["train"] + seconds["predict"]
    seconds["train_predict_cluster"] = seconds["train"] + seconds["predict"] + seconds["cluster"]
    import splink

    result = {
        "backend": backend,
        "model": model_name,
        "threshold": threshold,
        "records": int(len(df)),
        "splink_version": splink.__version__,
        "seconds": seconds,
    }
    with open(os.path.join(out_dir, "timings.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    if backend == "spark":
        spark.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run Splink 5 on one benchmark input (one process per run)")
    parser.add_argument("--backend", choices=["spark", "duckdb"], required=True)
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    parser.add_argument("--input", required=True, help="parquet written by bench.inputs")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    result = run(args.backend, args.model, args.input, args.out, args.threshold, args.seed)
    print(json.dumps(result["seconds"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
