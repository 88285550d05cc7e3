"""Config loading: env substitution, overrides, and exact error messages for broken files."""

from __future__ import annotations

import os
import textwrap
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
