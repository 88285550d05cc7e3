"""setup.py declares what the code and the tests import, and pins the test tools. No Spark."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {"jobs", "tests", "conftest", "pg", "bench"}


def _setup_lists() -> dict[str, list[str]]:
    """INSTALL_REQUIRES and the EXTRAS lists, read from setup.py without running it."""
    found: dict[str, list[str]] = {}
    for node in ast.parse((ROOT / "setup.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "INSTALL_REQUIRES":
                found["install"] = ast.literal_eval(node.value)
            elif name == "EXTRAS":
                found.update(ast.literal_eval(node.value))
    return found


def _imports(folder: Path) -> dict[str, str]:
    """Top-level third-party modules imported by the .py files under ``folder`` -> a file importing it."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # an import inside try/except is optional (the code works without it): not a requirement
        optional = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) and t.handlers for b in t.body for n in ast.walk(b)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL and top != "__future__":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _declared(*lists: str) -> set[str]:
    groups = _setup_lists()
    return {canonicalize_name(Requirement(r).name) for name in lists for r in groups[name]}


def _missing(modules: dict[str, str], declared: set[str]) -> list[str]:
    dists = packages_distributions()
    missing = []
    for module, where in modules.items():
        names = {canonicalize_name(d) for d in dists.get(module, [])}
        if not names & declared:
            missing.append(f"{module} (imported by {where}; distributions {sorted(names) or 'unknown'})")
    return missing


def test_tests_import_only_declared_packages() -> None:
    assert _missing(_imports(ROOT / "tests"), _declared("install", "spark", "test")) == []


def test_the_package_imports_only_its_requirements_and_the_spark_extra() -> None:
    assert _missing(_imports(ROOT / "jobs"), _declared("install", "spark")) == []


def test_test_tools_are_pinned() -> None:
    loose = [r for r in _setup_lists()["test"] if not str(Requirement(r).specifier).startswith("==")]
    assert loose == []
