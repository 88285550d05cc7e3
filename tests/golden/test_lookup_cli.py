"""`cdp profile --id TYPE:VALUE` through the real CLI, for every identifier type, and the subject
checks of `cdp privacy erase`: no error repeats an identifier value (it is personal data)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs import cli
from jobs.common import schemas as S
from jobs.common.errors import ConfigError
from jobs.golden import job
from jobs.golden.lookup import parse_subject

from .conftest import anchored, clusters_of, rows_of

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):  # noqa: ANN001, ANN201
    """A golden lake with one person holding one identifier of each type, and a second person."""
    from jobs.common.config import LoadedConfig
    from jobs.common.context import build_context
    from jobs.common.settings import CdpConfig

    base = tmp_path_factory.mktemp("lookup")
    data = {"lake": {"root": str(base / "lake")}, "data": {"root": str(base / "data")}}
    ctx = build_context(LoadedConfig(CdpConfig.model_validate(data), {}, str(base), data), spark=spark)
    records = [
        {"record_key": "k1", "source": "crm", "trust_rank": 1, "given_name": "Jan", "family_name": "Jansen",
         "email": "jan@voorbeeld.nl", "email_valid": True, "phone": "+31623456789", "phone_valid": True,
         "customer_number": "K-100", "source_created_at": datetime(2020, 1, 1), "extensions": {}},
        {"record_key": "k2", "source": "pos", "trust_rank": 3, "loyalty_card": "L200",
         "source_created_at": datetime(2021, 1, 1), "extensions": {}},
        {"record_key": "k3", "source": "web", "trust_rank": 5, "cookie_id": "ck-300",
         "source_created_at": datetime(2022, 1, 1), "extensions": {}},
        {"record_key": "k4", "source": "crm", "trust_rank": 1, "given_name": "Piet", "family_name": "Smit",
         "email": "piet@voorbeeld.nl", "email_valid": True, "source_created_at": datetime(2020, 1, 1), "extensions": {}},
    ]
    ids = [("k1", "email", "jan@voorbeeld.nl"), ("k1", "phone", "+31623456789"), ("k1", "customer_number", "K-100"),
           ("k2", "loyalty_card", "L200"), ("k3", "cookie_id", "ck-300"), ("k4", "email", "piet@voorbeeld.nl")]
    ctx.lake.overwrite(S.SILVER_RECORDS.address, rows_of(spark, S.SILVER_RECORDS, records))
    ctx.lake.overwrite(S.SILVER_IDENTIFIERS.address, rows_of(
        spark, S.SILVER_IDENTIFIERS, [{"record_key": k, "id_type": t, "id_value": v, "source": "s"} for k, t, v in ids]))
    ctx.lake.overwrite(S.MATCH_CLUSTERS.address, clusters_of(spark, [["k1", "k2", "k3"], ["k4"]]))
    job.run(ctx)
    return base


def _profile(lake: Path, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    argv = ["profile", "--config", str(REPO / "conf" / "local.yaml"), "--set", f"lake.root={lake / 'lake'}",
            "--set", f"data.root={lake / 'data'}", "--set", "spark.shuffle_partitions=2", *args]
    capsys.readouterr()
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


JAN = anchored("k1")


@pytest.mark.parametrize(
    "subject",
    [
        "email:jan@voorbeeld.nl",
        "email: Jan@Voorbeeld.NL ",  # normalised like silver
        "phone:+31623456789",  # E.164
        "phone:06 23456789",  # national form, default country NL
        "phone:+31 6 2345 6789",
        "customer_number:K-100",
        "loyalty_card:L-200",  # silver holds L200
        "customer_number: k-100",
        "cookie_id:ck-300",
        f"person_id:{JAN}",
    ],
)
def test_profile_by_every_identifier_type(lake, capsys, subject: str) -> None:  # noqa: ANN001
    code, out, _ = _profile(lake, capsys, "--id", subject, "--json")
    assert code == 0
    found = json.loads(out)
    assert (found["person_id"], found["given_name"], found["record_count"]) == (JAN, "Jan", 3)
    assert found["identifiers"] == {"cookie_id": ["ck-300"], "customer_number": ["K-100"], "email": ["jan@voorbeeld.nl"],
                                    "loyalty_card": ["L200"], "phone": ["+31623456789"]}
    assert found["provenance"]["email"]["record_key"] == "k1"


def test_profile_as_text_shows_provenance(lake, capsys) -> None:  # noqa: ANN001
    code, out, _ = _profile(lake, capsys, "--id", "email:piet@voorbeeld.nl")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"person {anchored('k4')}  (household -)"
    assert any(ln.split()[:2] == ["given_name", "Piet"] and ln.rstrip().endswith("crm k4 by source_trust") for ln in lines)


@pytest.mark.parametrize(
    ("subject", "code", "message", "secret"),
    [
        ("email:nobody@voorbeeld.nl", 1, "error: no person has this email (the value is not shown); expected a known email",
         "nobody"),
        ("phone:0687654321", 1, "error: no person has this phone (the value is not shown)", "87654321"),
        ("email:Test@Test.nl", 1, "error: this email is a value silver keeps for no one, a placeholder or an invalid email "
         "(the value is not shown); expected the email as one person holds it", "Test@"),
        ("phone:0000000000", 1, "error: this phone is a value silver keeps for no one", "0000000000"),
        ("jan@voorbeeld.nl", 2, "got no known TYPE before a ':' (the value is not shown); expected TYPE:VALUE with TYPE one of "
         "email, phone, customer_number, loyalty_card, cookie_id, device_id, person_id", "jan@"),
        ("shoe_size:42", 2, "got no known TYPE before a ':'", "shoe_size"),
        ("email:  ", 2, "got email with an empty value", "@"),
        ("phone:call-me-maybe", 2, "phone: the value cannot be parsed as a phone number", "call-me"),
    ],
)
def test_unknown_or_malformed_ids_fail_without_echoing_the_value(lake, capsys, subject, code, message, secret) -> None:  # noqa: ANN001
    got, out, err = _profile(lake, capsys, "--id", subject)
    assert got == code
    assert out == ""
    assert message in err
    assert secret not in err


def _error(err: str) -> str:
    """The CLI's error line (stderr also carries the INFO log lines)."""
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def test_an_unknown_person_id_exits_non_zero_and_says_so(lake, capsys) -> None:  # noqa: ANN001
    unknown = "P" + "0" * 24
    code, out, err = _profile(lake, capsys, "--id", f"person_id:{unknown}")
    assert (code, out) == (1, "")
    assert _error(err) == f"error: no person has person_id {unknown}; expected the person_id of a golden profile"


def _history_lake(spark, base: Path) -> dict:  # noqa: ANN001
    """Two golden runs: between them Jan's family name changes and persons h2 and h3 merge."""
    from jobs.common.config import LoadedConfig
    from jobs.common.context import build_context
    from jobs.common.settings import CdpConfig

    data = {"lake": {"root": str(base / "lake")}, "data": {"root": str(base / "data")}}
    ctx = build_context(LoadedConfig(CdpConfig.model_validate(data), {}, str(base), data), spark=spark)

    def golden_run(family_name: str, groups: list[list[str]]) -> str:
        records = [
            {"record_key": "h1", "source": "crm", "trust_rank": 1, "given_name": "Jan", "family_name": family_name,
             "email": "jan@voorbeeld.nl", "email_valid": True, "source_created_at": datetime(2020, 1, 1), "extensions": {}},
            {"record_key": "h2", "source": "crm", "trust_rank": 1, "given_name": "Piet", "family_name": "Smit",
             "source_created_at": datetime(2021, 1, 1), "extensions": {}},
            {"record_key": "h3", "source": "pos", "trust_rank": 3, "given_name": "Piet", "family_name": "Smit",
             "source_created_at": datetime(2022, 1, 1), "extensions": {}},
        ]
        ctx.lake.overwrite(S.SILVER_RECORDS.address, rows_of(spark, S.SILVER_RECORDS, records))
        ctx.lake.overwrite(S.SILVER_IDENTIFIERS.address, rows_of(
            spark, S.SILVER_IDENTIFIERS, [{"record_key": "h1", "id_type": "email", "id_value": "jan@voorbeeld.nl",
                                           "source": "crm"}]))
        ctx.lake.overwrite(S.MATCH_CLUSTERS.address, clusters_of(spark, groups))
        return job.run(ctx)["run_id"]

    golden_run("Jansen", [["h1"], ["h2"], ["h3"]])
    between = datetime.now(timezone.utc)
    time.sleep(1.5)  # the next commits are later than `between` (Delta commit times are in milliseconds)
    second = golden_run("de Boer", [["h1"], ["h2", "h3"]])
    return {"base": base, "between": between, "second_run": second}


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory):  # noqa: ANN001, ANN201
    return _history_lake(spark, tmp_path_factory.mktemp("lookup_history"))


def test_as_of_through_the_cli_returns_the_profile_as_it_was(history, capsys) -> None:  # noqa: ANN001
    lake, between = history["base"], history["between"].isoformat()
    code, out, _ = _profile(lake, capsys, "--id", "email:jan@voorbeeld.nl", "--json")
    assert (code, json.loads(out)["family_name"]) == (0, "de Boer")
    code, out, _ = _profile(lake, capsys, "--id", "email:jan@voorbeeld.nl", "--json", "--as-of", between)
    then = json.loads(out)
    assert (code, then["person_id"], then["family_name"]) == (0, anchored("h1"), "Jansen")
    code, out, _ = _profile(lake, capsys, "--id", f"person_id:{anchored('h1')}", "--as-of", between)
    assert code == 0 and any(ln.split()[:2] == ["family_name", "Jansen"] for ln in out.splitlines())
    # a date before the first golden run: delta-rs reads version 0, the empty table the job created
    # (delta-spark refuses the time instead: "--as-of ...: golden.profiles has no version at or before")
    code, out, err = _profile(lake, capsys, "--id", "email:jan@voorbeeld.nl", "--as-of", "2001-01-01")
    assert (code, out) == (1, "")
    assert _error(err) == f"error: person {anchored('h1')} has no golden profile on 2001-01-01"


def test_a_merged_person_id_names_the_id_it_was_merged_into(history, capsys) -> None:  # noqa: ANN001
    survivor, merged = sorted([anchored("h2"), anchored("h3")])  # a tie in size and age: the smaller id stays
    lake = history["base"]
    code, out, err = _profile(lake, capsys, "--id", f"person_id:{merged}")
    assert (code, out) == (1, "")
    assert _error(err) == (f"error: person_id {merged} has no golden profile: it was merged into {survivor} in run "
                           f"{history['second_run']}; expected the person_id of a golden profile")
    # before the merge the id had its own profile
    code, out, _ = _profile(lake, capsys, "--id", f"person_id:{merged}", "--json", "--as-of", history["between"].isoformat())
    assert (code, json.loads(out)["person_id"]) == (0, merged)


def test_parse_subject_errors_do_not_echo(spark) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as exc:
        parse_subject("Jan Jansen 12-03-1980")
    assert exc.value.problems == [
        "--id/--subject: got no known TYPE before a ':' (the value is not shown); expected TYPE:VALUE with TYPE one of "
        "email, phone, customer_number, loyalty_card, cookie_id, device_id, person_id"]
    assert parse_subject("PHONE: 06-12345678") == ("phone", "+31612345678")


def _subjects(subject: list[str] | None = None, file: Path | None = None) -> list[str]:
    return cli._subjects(argparse.Namespace(subject=subject, file=str(file) if file else None))


def test_erase_subjects_from_a_file_name_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# erasure batch 7\nemail:a@voorbeeld.nl\n\n  phone:06 12345678  \n", encoding="utf-8")
    assert _subjects(["customer_number:K-1"], good) == ["customer_number:K-1", "email:a@voorbeeld.nl", "phone:06 12345678"]

    bad = tmp_path / "bad.txt"
    bad.write_text("email:a@voorbeeld.nl\nJan Jansen secret\n# fine\nphone:\nphone:not-a-phone\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        _subjects(["hidden-value"], bad)
    problems = exc.value.problems
    assert [p.split(": ", 1)[0] for p in problems] == ["--subject #1", f"{bad} line 2", f"{bad} line 4", f"{bad} line 5"]
    assert problems[2] == f"{bad} line 4: --id/--subject: got phone with an empty value; expected TYPE:VALUE with TYPE " \
                          "one of email, phone, customer_number, loyalty_card, cookie_id, device_id, person_id"
    text = str(exc.value)
    for secret in ("hidden-value", "Jan Jansen", "secret", "not-a-phone"):
        assert secret not in text

    with pytest.raises(ConfigError, match=r"privacy erase --file .*missing\.txt: cannot be read \(No such file or directory\); "
                                          r"expected a UTF-8 file with one TYPE:VALUE per line"):
        _subjects(None, tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="got no subject; expected --subject TYPE:VALUE or --file FILE"):
        _subjects(None, None)


def test_erase_with_a_malformed_subject_stops_before_erasing(lake, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    subjects = tmp_path / "subjects.txt"
    subjects.write_text("email:jan@voorbeeld.nl\nnot a subject at all\n", encoding="utf-8")
    argv = ["privacy", "erase", "--config", str(REPO / "conf" / "local.yaml"), "--set", f"lake.root={lake / 'lake'}",
            "--set", f"data.root={lake / 'data'}", "--set", "spark.shuffle_partitions=2", "--file", str(subjects)]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{subjects} line 2: --id/--subject: got no known TYPE" in err and "not a subject" not in err
    # nothing was erased: the profile is still found
    code, out, _ = _profile(lake, capsys, "--id", "email:jan@voorbeeld.nl", "--json")
    assert (code, json.loads(out)["person_id"]) == (0, JAN)
