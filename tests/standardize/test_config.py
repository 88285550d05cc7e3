"""conf/standardize.yaml validates, and a bad value is reported with its path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from jobs.standardize.config import StandardizeConfig

CONF = Path(__file__).resolve().parents[2] / "conf" / "standardize.yaml"


def test_example_config_validates() -> None:
    cfg = StandardizeConfig.model_validate(yaml.safe_load(CONF.read_text()))
    assert cfg.email_typo_mode == "correct"
    assert "onbekend" in cfg.placeholders.generic and "0000000000" in cfg.placeholders.phone
    assert cfg.titles["mw"].gender == "f" and cfg.titles["mr"].gender is None


def test_unknown_step_and_bad_mode_are_reported_together() -> None:
    with pytest.raises(ValidationError) as err:
        StandardizeConfig.model_validate({"email_typo_mode": "fix"})
    assert "email_typo_mode" in str(err.value) and "'correct' or 'flag'" in str(err.value)
    with pytest.raises(ValidationError, match=r"steps\[0\]: got 'nams'; expected a record step"):
        StandardizeConfig.model_validate({"steps": ["nams"]})
