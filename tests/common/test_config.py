"""Config loading: env substitution, overrides, and exact error messages for broken files.

The first tests use a toy model; the rest load the real one (CdpConfig) from YAML fixtures in
fixtures/broken (every kind of problem at once) and fixtures/valid.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from jobs.common.config import Strict, apply_override, load_config
from jobs.common.errors import ConfigError


class Inner(Strict):
    name: str = Field(..., pattern=r"^[a-z]+$")
    size: int = Field(1, ge=1)
    mode: Literal["fast", "exact"] = "fast"


class Root(Strict):
    environment: str = "local"
    lake: dict[str, str] = Field(default_factory=dict)
    match: Inner | None = None
    sources: list[Inner] = Field(default_factory=list)


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def rel(path: str) -> str:
    return os.path.relpath(path)


def test_include_env_substitution_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_TEST_ROOT", "/data/lake")
    write(tmp_path, "match.yaml", "name: probabilistic\nsize: 3\n")
    write(tmp_path, "sources/a.yaml", "name: crm\n")
    write(tmp_path, "sources/b.yaml", "- name: web\n- name: pos\n  size: ${CDP_TEST_SIZE:-7}\n")
    env = write(
        tmp_path,
        "local.yaml",
        """
        environment: local
        lake: {root: "${CDP_TEST_ROOT}"}
        include: {match: match.yaml, sources: "sources/*.yaml"}
        """,
    )
    loaded = load_config(env, ["match.size=5", "sources.pos.mode=exact", "lake.engine=delta-rs"], model=Root)
    cfg = loaded.model
    assert cfg.lake == {"root": "/data/lake", "engine": "delta-rs"}
    assert cfg.match == Inner(name="probabilistic", size=5, mode="fast")
    assert [(s.name, s.size, s.mode) for s in cfg.sources] == [("crm", 1, "fast"), ("web", 1, "fast"), ("pos", 7, "exact")]
    assert loaded.files["sources[2]"] == rel(str(tmp_path / "sources/b.yaml"))
    assert len(loaded.hash) == 16


def test_all_errors_reported_together_with_file_path_value_and_expectation(tmp_path: Path) -> None:
    match = write(tmp_path, "match.yaml", "name: Bad-Name\nsize: 0\nmode: slow\ncolour: red\n")
    src = write(tmp_path, "sources/a.yaml", "- name: ok\n- size: two\n")
    env = write(tmp_path, "local.yaml", "environment: 3\ninclude: {match: match.yaml, sources: sources/a.yaml}\n")
    with pytest.raises(ConfigError) as info:
        load_config(env, model=Root)
    assert info.value.exit_code == 2
    assert info.value.problems == [
        f"{rel(env)}: environment: got 3; expected a valid string",
        f"{rel(match)}: match.name: got 'Bad-Name'; expected string should match pattern '^[a-z]+$'",
        f"{rel(match)}: match.size: got 0; expected greater than or equal to 1",
        f"{rel(match)}: match.mode: got 'slow'; expected one of 'fast' or 'exact'",
        f"{rel(match)}: match.colour: got key 'colour'; expected no such key; allowed keys: mode, name, size",
        f"{rel(src)}: sources[1].name: got nothing; expected a value (this key is required)",
        f"{rel(src)}: sources[1].size: got 'two'; expected a valid integer, unable to parse string as an integer",
    ]


def test_missing_env_var_and_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    env = write(tmp_path, "local.yaml", "lake: {root: '${CDP_SURELY_UNSET_VAR}'}\ninclude: {match: nope.yaml}\n")
    with pytest.raises(ConfigError) as info:
        load_config(env, model=Root)
    assert info.value.problems[0] == (
        f"{rel(env)}: lake.root: got '${{CDP_SURELY_UNSET_VAR}}'; expected environment variable CDP_SURELY_UNSET_VAR to be set"
    )
    assert info.value.problems[1] == f"{rel(str(tmp_path / 'nope.yaml'))}: file not found"
    broken = write(tmp_path, "broken.yaml", "lake: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(broken, model=Root)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{rel(broken)}: line 2, column 1 not valid YAML:")


def test_overrides_report_bad_forms() -> None:
    doc = {"sources": [{"name": "crm"}], "lake": {"root": "x"}}
    apply_override(doc, "sources[0].trust_rank=2")
    apply_override(doc, "spark.conf.spark.x=1")
    assert doc["sources"][0]["trust_rank"] == 2
    assert doc["spark"] == {"conf": {"spark": {"x": 1}}}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_override(doc, "lake.root")
    with pytest.raises(ConfigError, match="no item named 'web' in that list"):
        apply_override(doc, "sources.web.x=1")
    with pytest.raises(ConfigError, match=r"index 3 is out of range \(the list has 1 items\)"):
        apply_override(doc, "sources[3].x=1")


# --- the real config model, with broken and valid YAML fixtures -----------------------------------

FIXTURES = Path(__file__).parent / "fixtures"
BROKEN = FIXTURES / "broken"
VALID = FIXTURES / "valid"


def _expected_broken_problems() -> list[str]:
    """Every problem in fixtures/broken, in file order and, within a file, in document order."""
    from jobs.common.schemas import CANONICAL_FIELDS, EVENT_FIELDS, IDENTIFIER_TYPES
    from jobs.match.comparisons import COMPARISONS
    from jobs.match.config import MATCH_COLUMNS
    from jobs.standardize.cleansers import CLEANSERS, RECORD_STEPS

    env, crm, web = rel(str(BROKEN / "local.yaml")), rel(str(BROKEN / "sources/crm.yaml")), rel(str(BROKEN / "sources/web.yaml"))
    std, match = rel(str(BROKEN / "standardize.yaml")), rel(str(BROKEN / "match.yaml"))
    golden, privacy = rel(str(BROKEN / "golden.yaml")), rel(str(BROKEN / "privacy.yaml"))
    from jobs.common.schemas import SURVIVING_ATTRIBUTES
    from jobs.golden.config import SURVIVORSHIP_RULES

    rules = ", ".join(repr(r) for r in SURVIVORSHIP_RULES[:-1]) + f" or {SURVIVORSHIP_RULES[-1]!r}"
    persons, events = ", ".join(CANONICAL_FIELDS), ", ".join(EVENT_FIELDS)
    id_types = ", ".join(IDENTIFIER_TYPES)
    return [
        f"{env}: environment: got 'Local'; expected string should match pattern '^[a-z][a-z0-9_-]*$'",
        f"{env}: spark.shuffle_partitions: got 0; expected greater than or equal to 1",
        f"{env}: lake.engine: got 'duckdb'; expected one of 'auto', 'delta-rs' or 'delta-spark'",
        f"{crm}: sources[0].location: got nothing; expected a file, folder or glob for format csv",
        f"{crm}: sources[0].delimiter: got ';;'; expected string should have at most 1 character",
        f"{crm}: sources[0].trust_rank: got 0; expected greater than or equal to 1",
        f"{crm}: sources[0].records_from: got 'cookie_id'; expected no records_from for a persons source (events only)",
        f"{crm}: sources[0].identifiers[1]: got 'fax'; expected one of {id_types}",
        f"{crm}: sources[0].identifiers[3]: got 'pager'; expected one of {id_types}",
        f"{crm}: sources[0].mapping.bogus: got key 'bogus'; expected a canonical field for persons sources: {persons}",
        f"{crm}: sources[0].mapping.shoe_size: got key 'shoe_size'; expected a canonical field for persons sources: {persons}",
        f"{crm}: sources[0].owner: got a mapping with keys source, key; expected no owner for a persons source (events only)",
        f"{web}: sources[1].jdbc: got nothing; expected a jdbc section (url, table, user, password) for format jdbc",
        f"{web}: sources[1].mapping.given_name: got key 'given_name'; expected a canonical field for events sources: {events}",
        f"{web}: sources[1].owner.source: got 'web'; expected a persons source (crm)",
        f"{web}: sources[2].name: got 'crm'; expected a unique source name; 'crm' is already sources[0].name",
        f"{web}: sources[2].primary_key: got []; expected list should have at least 1 item after validation, not 0",
        f"{std}: standardize.steps[2]: got 'nams'; expected a record step: {', '.join(RECORD_STEPS.names())}",
        f"{std}: standardize.steps[5]: got 'names'; expected each step at most once; 'names' is already steps[3]",
        f"{std}: standardize.email_typo_mode: got 'fix'; expected one of 'correct' or 'flag'",
        f"{std}: standardize.country_aliases.holland: got 'nl'; expected an ISO 3166-1 alpha-2 code in upper case",
        f"{std}: standardize.date_formats[1]: got 'MM-yyyy'; expected a pattern with year (y), month (M) and day (d)",
        f"{std}: standardize.consent_false[1]: got 'ja'; expected a value not also in consent_true; 'ja' is consent_true[0]",
        f"{std}: standardize.placeholders.phone[1]: got '06-1234'; expected digits only",
        f"{std}: standardize.placeholders.generic_fields[1]: got 'nickname'; expected a canonical field: {persons}",
        f"{std}: standardize.placeholders.generic_patterns[1]: got '^(unclosed$'; expected a valid regular expression "
        "(missing ), unterminated subpattern at position 1)",
        f"{std}: standardize.postcode_rules.nl: got key 'nl'; expected an ISO 3166-1 alpha-2 code in upper case",
        f"{std}: standardize.identifier_cleansers.loyalty_card[1].name: got 'shout'; expected a registered cleanser: "
        f"{', '.join(CLEANSERS.names())}",
        f"{std}: standardize.identifier_cleansers.passport: got key 'passport'; expected one of customer_number, "
        "loyalty_card, cookie_id, device_id",
        f"{match}: match.blocking_rules[0].keys[1]: got 'soundex(password)'; expected a valid blocking key "
        "(column 'password' is not a column of silver.records)",
        f"{match}: match.blocking_rules[1].name: got 'Email'; expected string should match pattern '^[a-z][a-z0-9_]*$'",
        f"{match}: match.blocking_rules[2].name: got 'family'; expected a unique name; 'family' is already blocking_rules[0].name",
        f"{match}: match.comparisons[0].function: got 'jaro_winklr'; expected a registered comparison: "
        f"{', '.join(COMPARISONS.names())}",
        f"{match}: match.comparisons[1].columns[1]: got 'e_mail'; expected a column of silver.records: {', '.join(MATCH_COLUMNS)}",
        f"{match}: match.comparisons[2].name: got 'given_name'; expected a unique name; 'given_name' is already comparisons[0].name",
        f"{match}: match.comparisons[2].arguments.case_sensitive: got key 'case_sensitive'; expected an argument of "
        "comparison 'exact': none",
        f"{match}: match.comparisons[3].term_frequency_adjustments: got true; expected false: comparison function "
        "'date' has no exact level a term-frequency adjustment could apply to",
        f"{match}: match.training.prior_value: got nothing; expected the probability that two random records match "
        "(prior is 'fixed')",
        f"{match}: match.training.blocking_rules[1]: got 'nope'; expected one of the blocking rules: family",
        f"{match}: match.deterministic.id_types[1]: got 'email'; expected each identifier type at most once; 'email' is "
        "already id_types[0]",
        f"{match}: match.deterministic.id_types[2]: got 'fax'; expected one of 'email', 'phone', 'customer_number', "
        "'loyalty_card', 'cookie_id' or 'device_id'",
        f"{match}: match.guard.strict_threshold_probability: got 0.5; expected at least threshold_probability (0.95)",
        f"{match}: match.model: got version 2 and alias 'prod'; expected a version or an alias, not both",
        f"{golden}: golden.default_rule: got 'newest'; expected one of {rules}",
        f"{golden}: golden.survivorship.email: got 'most_recnt'; expected one of {rules}",
        f"{golden}: golden.survivorship.shoe_size: got key 'shoe_size'; expected one of the profile attributes: "
        f"{', '.join(SURVIVING_ATTRIBUTES)}",
        f"{golden}: golden.survivorship.given_name: got 'most_frequent'; expected 'source_trust' (the rule of "
        "family_name) or no entry: the name survives as a whole from the record the family_name rule picks",
        f"{golden}: golden.survivorship.street: got 'source_trust'; expected 'most_recent' (the rule of postcode) or "
        "no entry: the address survives as a whole from the record the postcode rule picks",
        f"{golden}: golden.households.max_size: got 1; expected greater than or equal to 2",
        f"{golden}: golden.households.colour: got key 'colour'; expected no such key; allowed keys: enabled, "
        "max_size, same_family_name",
        f"{golden}: golden.rfm.recency_days[2]: got 90; expected more than recency_days[1] (90): thresholds are "
        "strictly ascending",
        f"{golden}: golden.rfm.monetary_eur: got [50, 150, 400]; expected list should have at least 4 items after "
        "validation, not 3",
        f"{privacy}: privacy.salt: got 'short'; expected string should have at least 8 characters",
        f"{privacy}: privacy.landing_rewrite: got 'maybe'; expected a valid boolean, unable to interpret input",
        f"{privacy}: privacy.scan_extra_paths: got '/mnt/extra'; expected a valid list",
        f"{privacy}: privacy.exports_dir: got key 'exports_dir'; expected no such key; allowed keys: export_dir, "
        "landing_rewrite, salt, scan_extra_paths",
    ]


def test_real_model_reports_every_field_and_cross_field_problem_at_once() -> None:
    """Cross-field checks run although field errors exist, in the same and in other sections."""
    with pytest.raises(ConfigError) as info:
        load_config(str(BROKEN / "local.yaml"))
    assert info.value.exit_code == 2
    assert info.value.problems == _expected_broken_problems()


def test_checks_whose_inputs_did_not_validate_are_skipped(tmp_path: Path) -> None:
    """A check reading a broken value is skipped (that value has its own error); the others run."""
    match = write(
        tmp_path,
        "match.yaml",
        """
        threshold_probability: high
        guard: {strict_threshold_probability: 0.1}
        blocking_rules: {family: [family_name_match]}
        training: {blocking_rules: [family]}
        model: {version: 0, alias: prod}
        comparisons:
          - {name: email, function: email, columns: email}
          - {name: email, function: exact, columns: [email, phone]}
        """,
    )
    env = write(tmp_path, "local.yaml", "include: {match: match.yaml}\n")
    with pytest.raises(ConfigError) as info:
        load_config(env)
    m = rel(match)
    assert info.value.problems == [
        f"{m}: match.threshold_probability: got 'high'; expected a valid number, unable to parse string as a number",
        f"{m}: match.blocking_rules: got a mapping with keys family; expected a valid list",
        f"{m}: match.model.version: got 0; expected greater than or equal to 1",
        f"{m}: match.comparisons[0].columns: got 'email'; expected a valid list",
        f"{m}: match.comparisons[1]: got function 'exact' on columns ['email', 'phone']; expected columns and "
        "arguments that comparison 'exact' accepts (comparison 'exact' takes exactly one column; got ['email', 'phone'])",
        f"{m}: match.comparisons[1].name: got 'email'; expected a unique name; 'email' is already comparisons[0].name",
    ]


def test_an_owner_key_has_one_field_per_primary_key_column_of_its_source(tmp_path: Path) -> None:
    sources = write(
        tmp_path,
        "sources.yaml",
        """
        - {name: shop, format: ndjson, location: shop, primary_key: [shop_id, customer_id]}
        - {name: orders, kind: events, format: ndjson, location: orders, primary_key: [order_id],
           owner: {source: shop, key: customer_id}}
        - {name: mails, kind: events, format: csv, location: mails, primary_key: [id],
           owner: {source: shop, key: [shop, customer]}}
        """,
    )
    env = write(tmp_path, "local.yaml", "include: {sources: sources.yaml}\n")
    with pytest.raises(ConfigError) as info:
        load_config(env)
    assert info.value.problems == [
        f"{rel(sources)}: sources[1].owner.key: got ['customer_id']; expected 2 field(s), one per primary key "
        "column of shop (shop_id, customer_id)",
    ]


def test_overrides_are_checked_and_blamed_on_the_file_of_their_section() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(VALID / "local.yaml"), ["match.guard.strict_threshold_probability=0.5", "sources[0].mapping.nope=x"])
    from jobs.common.schemas import CANONICAL_FIELDS

    persons = ", ".join(CANONICAL_FIELDS)
    assert info.value.problems == [
        f"{rel(str(VALID / 'sources/crm.yaml'))}: sources[0].mapping.nope: got key 'nope'; expected a canonical field "
        f"for persons sources: {persons}",
        f"{rel(str(VALID / 'match.yaml'))}: match.guard.strict_threshold_probability: got 0.5; expected at least "
        "threshold_probability (0.9)",
    ]


def test_valid_fixture_loads_and_direct_construction_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from jobs.ingest.config import SourceConfig

    monkeypatch.setenv("CDP_TEST_LAKE_ROOT", "/data/lake")
    cfg = load_config(str(VALID / "local.yaml")).model
    assert cfg.lake.root == "/data/lake"
    assert cfg.source("crm").mapping["source_id"] == "klantnummer"  # the default key mapping still applies
    assert [r.name for r in cfg.match.blocking_rules] == ["family", "email"]
    assert (cfg.golden.rule_for("email"), cfg.golden.rule_for("city"), cfg.golden.households.max_size) == (
        "most_recent", "most_frequent", 6,
    )  # fmt: skip
    assert cfg.privacy.salt == "fixture-salt-not-secret" and cfg.privacy.scan_extra_paths == ["/mnt/archive"]
    with pytest.raises(ValidationError) as err:
        SourceConfig(name="crm", format="csv", primary_key=["id"], mapping={"bogus": "x"})
    assert "mapping.bogus: got key 'bogus'; expected a canonical field for persons sources" in str(err.value)
    assert "location: got nothing; expected a file, folder or glob for format csv" in str(err.value)



def test_cli_validate_config_prints_every_problem_and_exits_2(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from jobs.cli import main

    assert main(["validate-config", "--config", str(BROKEN / "local.yaml")]) == 2
    out, err = capsys.readouterr()
    expected = _expected_broken_problems()
    assert out == ""
    assert err == f"error: invalid configuration ({len(expected)} problems):\n" + "".join(f"  - {p}\n" for p in expected)


def test_cli_validate_config_accepts_a_valid_config(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    from jobs.cli import main

    config = str(VALID / "local.yaml")
    assert main(["validate-config", "--config", config]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{config}: valid (1 sources, 2 comparisons, 0 segments; config hash ")
    assert err == ""


class _JavaGone(Exception):
    """Like py4j's Py4JJavaError once the JVM has died: asking for the message fails."""

    def __str__(self) -> str:
        raise ConnectionRefusedError(111, "Connection refused")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad value 'x'\nsecond line"), "error: ValueError: bad value 'x' (run with --verbose for the stack trace)\n"),
        (
            _JavaGone(),
            "error: _JavaGone: the Spark JVM stopped while it raised this (the Java messages above say why; an "
            "OutOfMemoryError there means spark.driver_memory is too small for this run) (run with --verbose for the stack trace)\n",
        ),
    ],
)
def test_cli_unexpected_errors_print_one_line_even_when_the_message_cannot_be_read(
    exc: Exception, expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    import jobs.cli as cli

    def boom(args: object) -> int:
        raise exc

    monkeypatch.setattr(cli, "cmd_validate_config", boom)
    assert cli.main(["validate-config", "--config", str(VALID / "local.yaml")]) == 1
    assert capsys.readouterr().err == expected
