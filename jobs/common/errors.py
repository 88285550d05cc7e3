"""One exception hierarchy for the whole suite.

Every message says what failed, what was given and what was expected, so that a job can exit
with one clear line (the CLI prints ``str(error)``; the traceback only with ``--verbose``).
"""

from __future__ import annotations


class CdpError(Exception):
    """Base class of every error the suite raises on purpose."""

    exit_code: int = 1


class ConfigError(CdpError):
    """Configuration is invalid; ``problems`` lists every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(
            f"invalid configuration ({len(self.problems)} {noun}):\n"
            + "\n".join(f"  - {p}" for p in self.problems)
        )


class SchemaError(CdpError):
    """Data does not have the columns or types a step needs."""


class DataError(CdpError):
    """Data cannot be processed (unreadable file, failed batch, broken invariant)."""


class PrivacyError(CdpError):
    """A privacy request cannot be carried out or its verification failed."""


def require_columns(columns: list[str] | tuple[str, ...], available: list[str], where: str) -> None:
    """Fail naming the missing and the available columns (quinn's validate_presence_of_columns)."""
    missing = [c for c in columns if c not in available]
    if missing:
        raise SchemaError(
            f"{where}: missing column(s) {', '.join(missing)}; available: {', '.join(available)}"
        )
