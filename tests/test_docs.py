"""The docs cannot drift from the code: generated references, links, and the examples they show.

No Spark: the generators read schema constants and pydantic models only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from jobs import docs as D
from jobs.common.schemas import CANONICAL_FIELDS, EVENT_FIELDS
from jobs.ingest.config import SourceConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REGENERATE = "docs are out of date with the code; run `python -m jobs.docs` (or `make docs`) and commit the result"
# Linked from docs/index.md but produced elsewhere: benchmarks.md is written by `make bench`.
WRITTEN_ELSEWHERE = {"benchmarks.md"}


@pytest.mark.parametrize("name", sorted(D.GENERATED))
def test_generated_doc_matches_the_code(name: str) -> None:
    path = DOCS / name
    assert path.exists(), f"docs/{name} is missing; {REGENERATE}"
    on_disk = path.read_text(encoding="utf-8")
    generated = D.GENERATED[name]()
    if on_disk != generated:
        old, new = on_disk.splitlines(), generated.splitlines()
        first = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        pytest.fail(
            f"docs/{name} line {first + 1}: on disk {old[first] if first < len(old) else '<end>'!r}, "
            f"generated {new[first] if first < len(new) else '<end>'!r}; {REGENERATE}"
        )


def test_check_mode_detects_drift_and_write_fixes_it(tmp_path: Path) -> None:
    assert D.stale_docs(tmp_path) == ["tables.md", "config.md"]
    D.write_docs(tmp_path)
    assert D.stale_docs(tmp_path) == []
    (tmp_path / "config.md").write_text("# stale\n", encoding="utf-8")
    assert D.stale_docs(tmp_path) == ["config.md"]


def test_generated_docs_cover_every_table_and_config_section() -> None:
    from jobs.common import schemas as S
    from jobs.common.settings import CdpConfig

    tables = D.tables_markdown()
    for t in S.ALL_TABLES:
        assert f"## {t.address}\n" in tables
    config = D.config_markdown()
    for name in CdpConfig.model_fields:
        assert f"| `{name}` |" in config
    assert "## `sources[]` (SourceConfig)" in config
    assert "## `sources[].jdbc` (JdbcConfig)" in config


def test_every_config_key_has_a_description() -> None:
    """Each field of every config model says what it does: docs/config.md has no empty description cell."""
    from pydantic import BaseModel

    from jobs.common.settings import CdpConfig

    missing: list[str] = []
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel], path: str) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            where = f"{path}.{name}" if path else name
            if len((field.description or "").strip()) < 10:
                missing.append(f"{where} ({model.__module__}.{model.__name__})")
            for sub, suffix in D._models_in(field.annotation):
                walk(sub, f"{where}{suffix}")

    walk(CdpConfig, "")
    assert missing == [], f"config keys without a description (pydantic Field(description=...)): {missing}"
    rows = [line for line in D.config_markdown().splitlines() if line.startswith("| `")]
    assert len(rows) > 100 and [r for r in rows if r.rstrip().endswith("|  |")] == []


def test_generated_tables_are_well_formed_markdown() -> None:
    """Every table row has as many cells as its header: a bare | in a value would add one."""
    for name, fn in D.GENERATED.items():
        cells = None
        for i, line in enumerate(fn().splitlines(), 1):
            if not line.startswith("|"):
                cells = None
                continue
            n = len(re.findall(r"(?<!\\)\|", line))
            if cells is None:
                cells = n
            assert n == cells, f"{name} line {i}: {n - 1} cells, header has {cells - 1}: {line[:120]}"


def test_cell_escapes_pipes() -> None:
    assert D._cell("'a' | 'b'") == "'a' \\| 'b'"
    assert D._cell(D._cell("a|b")) == "a\\|b"


def _links(md: Path) -> list[str]:
    return [m for m in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", md.read_text(encoding="utf-8")) if "://" not in m]


@pytest.mark.parametrize("page", ["index.md", "how-to-add-a-source.md", "operations.md"])
def test_relative_links_resolve(page: str) -> None:
    missing = [
        link
        for link in _links(DOCS / page)
        if not (DOCS / link).resolve().exists() and Path(link).name not in WRITTEN_ELSEWHERE
    ]
    assert missing == [], f"docs/{page} links to missing files: {missing}"


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["index.md", "how-to-add-a-source.md", "operations.md"])
def test_link_anchors_exist(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s]+)#([^)\s]+)\)", text):
        path = (DOCS / target).resolve()
        headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)
        if anchor not in {_slug(h) for h in headings}:
            broken.append(f"{target}#{anchor}")
    assert broken == [], f"docs/{page} links to missing headings: {broken}"


def test_index_links_every_doc() -> None:
    linked = {Path(link).name for link in _links(DOCS / "index.md")}
    for name in ["tables.md", "config.md", "how-to-add-a-source.md", "segment-rules.md", "benchmarks.md", "operations.md", "README.md"]:
        assert name in linked, f"docs/index.md does not link {name}"


def _howto() -> str:
    return (DOCS / "how-to-add-a-source.md").read_text(encoding="utf-8")


def test_howto_lists_exactly_the_canonical_fields() -> None:
    text = _howto()
    persons = text.split("### Canonical fields a persons source can map", 1)[1].split("\n## ", 1)[0]
    events = text.split("### Canonical fields an events source can map", 1)[1].split("\n`event_types`", 1)[0]
    assert re.findall(r"^\| `([a-z_]+)` \|", persons, re.M) == list(CANONICAL_FIELDS)
    assert re.findall(r"^\| `([a-z_]+)` \|", events, re.M) == list(EVENT_FIELDS)


def test_howto_yaml_examples_are_valid_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", _howto(), re.S)
    assert len(blocks) == 3
    sources = []
    for block in blocks:
        doc = yaml.safe_load(block)
        if doc.get("jdbc", {}).get("password", "").startswith("${"):
            doc["jdbc"]["password"] = "secret"  # the loader substitutes ${VAR}; the model sees the value
        sources.append(SourceConfig.model_validate(doc))
    contacts, tickets, db = sources
    assert contacts.kind == "persons" and contacts.format == "csv" and contacts.mapping["source_id"] == "contact_id"
    assert contacts.fields[:3] == ["contact_id", "aanhef", "voornaam"]
    assert tickets.kind == "events" and tickets.event_type == "ticket"
    assert tickets.owner is not None and (tickets.owner.source, tickets.owner.key) == (contacts.name, contacts.primary_key)
    assert "contact_id" in tickets.fields  # bronze keeps the owner key as a column
    assert db.format == "jdbc" and db.jdbc is not None and db.jdbc.watermark_column == "updated_at"


def test_howto_sample_file_header_has_every_mapped_field() -> None:
    text = _howto()
    header = text.split("```text\n", 1)[1].splitlines()[0].split(";")
    contacts = SourceConfig.model_validate(yaml.safe_load(re.findall(r"```yaml\n(.*?)```", text, re.S)[0]))
    assert [f for f in contacts.fields if f not in header] == []


def test_readme_cluster_section_names_the_installed_versions() -> None:
    from importlib.metadata import version

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("## Running on a cluster") < readme.index("## Reading a profile as it was on a date")
    section = readme.split("## Running on a cluster", 1)[1].split("\n## ", 1)[0]
    spark_minor = ".".join(version("pyspark").split(".")[:2])
    assert f"io.delta:delta-spark_{spark_minor}_2.13:{version('delta-spark')}" in section
    assert f"io.graphframes:graphframes-spark4_2.13:{version('graphframes-py')}" in section
    for text in ["--set lake.engine=delta-spark", "--set match.clustering.engine=graphframes",
                 "SPARK_REMOTE=sc://", "databricks bundle deploy", "ops/airflow/cdp_pipeline.py", "ops/spark/cdp_main.py"]:
        assert text in section, f"README 'Running on a cluster' does not mention {text}"
    # under spark-submit the jobs take its --master (tests/common/test_spark.py): no override for it
    assert "spark.master=" not in section


# --- segment rule examples: every rule shown in the docs compiles, or is shown with its exact error ---

SEGMENT_RULES = DOCS / "segment-rules.md"
_FENCED = re.compile(r"```(\w*)\n(.*?)```", re.S)
_SPAN = re.compile(r"`([^`\n]+)`")


def _fenced(text: str, lang: str) -> list[str]:
    return [body for kind, body in _FENCED.findall(text) if kind == lang]


def _table(text: str, header: str) -> list[list[str]]:
    """The rows (cells, without the header and separator) of the table whose header line is ``header``."""
    lines = text.split(header + "\n", 1)[1].splitlines()[1:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def _rule_like(span: str) -> bool:
    """A code span in running text that is a whole rule: a comparison between spaces, or 'not ...'."""
    return bool(re.search(r" (=|!=|<>|<|<=|>|>=) ", span)) or span.startswith("not ")


def _doc_rules() -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """(valid rules with where they were found, invalid rule -> the exact messages the docs give)."""
    text = SEGMENT_RULES.read_text(encoding="utf-8")
    invalid = {_SPAN.findall(rule)[0]: _SPAN.findall(messages) for rule, messages in _table(text, "| Rule | Message |")}
    valid: list[tuple[str, str]] = []
    for name, doc in (("docs/segment-rules.md", text), ("README.md", (ROOT / "README.md").read_text(encoding="utf-8"))):
        for block in _fenced(doc, "yaml"):
            for seg in (yaml.safe_load(block) or {}).get("segments", []) if "rule:" in block else []:
                valid.append((f"{name} yaml", seg["rule"]))
    examples = text.split("## Examples\n", 1)[1]
    valid += [("Examples", line) for line in _fenced(examples, "text")[0].splitlines() if line.strip()]
    for cells in _table(text, "| You write | Meaning |"):
        valid += [("at a glance", span) for span in _SPAN.findall(cells[0])]
    prose = "\n".join(ln for ln in _FENCED.sub("", text).splitlines() if not ln.startswith("|"))
    valid += [("text", span) for span in _SPAN.findall(prose) if _rule_like(span) and span not in invalid]
    return valid, invalid


def test_every_rule_example_in_the_docs_compiles_against_the_profile_schema() -> None:
    """check_rule is the whole front end of compile_rule (parse and type-check against the schema);
    compile_rule raises exactly when it reports a problem, and this module starts no Spark."""
    from jobs.common.schemas import GOLDEN_PROFILES
    from jobs.segments.rules import check_rule

    valid, _ = _doc_rules()
    found = {where for where, _ in valid}
    assert {"docs/segment-rules.md yaml", "Examples", "at a glance", "text"} <= found, found
    assert len(valid) >= 30
    problems = {rule: check_rule(rule, GOLDEN_PROFILES.schema) for _, rule in valid}
    assert {rule: p for rule, p in problems.items() if p} == {}


def test_the_invalid_rules_in_the_docs_give_exactly_the_messages_shown() -> None:
    from jobs.common.schemas import GOLDEN_PROFILES
    from jobs.segments.rules import check_rule

    _, invalid = _doc_rules()
    assert len(invalid) == 12
    assert {rule: check_rule(rule, GOLDEN_PROFILES.schema) for rule in invalid} == invalid


def test_the_yaml_example_of_segment_rules_is_a_valid_segments_section() -> None:
    from jobs.segments.config import SegmentsConfig
    from jobs.segments.rules import check_segments

    block = _fenced(SEGMENT_RULES.read_text(encoding="utf-8"), "yaml")[0]
    cfg = SegmentsConfig.model_validate(yaml.safe_load(block))
    assert (cfg.segments[0].exports, cfg.hashed_audience_consent) == (["email_csv", "hashed_audience"], "sms")
    assert check_segments(cfg) == []


def _shown_problems(block: str) -> list[str]:
    """The problem lines of a config error shown in the docs, continuation lines joined, file name dropped."""
    lines: list[str] = []
    for line in block.splitlines():
        if line.startswith("  - "):
            lines.append(line[4:].split(": ", 1)[1])
        elif line.startswith("    ") and lines:
            lines[-1] += " " + line.strip()
    return lines


@pytest.mark.parametrize(
    ("marker", "fixture"),
    [("invalid configuration (3 problems):", "segments_broken.yaml"),
     ("segments.segments[1].exports:", "segments_audience_without_consent.yaml")],
)
def test_the_config_errors_shown_in_segment_rules_are_real(marker: str, fixture: str) -> None:
    """Each error line shown is what the checks report for the broken fixture it was taken from
    (a line ending in '...' is shown shortened)."""
    from jobs.common.config import Problem
    from jobs.segments.config import SegmentsConfig
    from jobs.segments.rules import check_segments

    block = next(b for b in _fenced(SEGMENT_RULES.read_text(encoding="utf-8"), "text") if marker in b)
    doc = yaml.safe_load((ROOT / "tests" / "segments" / "fixtures" / fixture).read_text(encoding="utf-8"))
    real = [str(Problem(*p)) for p in check_segments(SegmentsConfig.model_validate(doc))]
    shown = _shown_problems(block)
    assert shown
    for line in shown:
        assert any(r == line or (line.endswith("...") and r.startswith(line[:-3])) for r in real), line
    if block.startswith("invalid configuration"):
        assert len(shown) == len(real)
