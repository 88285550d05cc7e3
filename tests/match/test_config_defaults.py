"""conf/match.yaml spells out the match defaults of jobs/match/config.py: the two cannot drift."""

from __future__ import annotations

from pathlib import Path

import yaml

from jobs.match.config import MatchConfig

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_shipped_match_yaml_equals_the_code_defaults() -> None:
    doc = yaml.safe_load((CONF / "match.yaml").read_text(encoding="utf-8"))
    # the rules and comparisons are written out for users to see and edit, not left to hidden defaults
    assert {"blocking_rules", "comparisons", "training", "clustering"} <= set(doc)
    shipped = MatchConfig.model_validate(doc)
    defaults = MatchConfig()
    assert [r.model_dump() for r in shipped.blocking_rules] == [r.model_dump() for r in defaults.blocking_rules]
    assert [c.model_dump() for c in shipped.comparisons] == [c.model_dump() for c in defaults.comparisons]
    assert shipped == defaults


def test_the_environment_file_loads_the_shipped_match_file() -> None:
    from jobs.common.config import load_config

    assert load_config(str(CONF / "local.yaml")).model.match == MatchConfig()
