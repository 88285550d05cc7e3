"""Name -> implementation registries, filled by decorators (dqx ``register_rule`` style).

Config names a comparison, standardiser or survivorship rule; the registry resolves the name and
checks its arguments at config-load time, so a typo fails before Spark starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """A named collection of callables with argument checking."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return decorator

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def check_arguments(self, name: str, args: dict[str, Any], skip: int = 0) -> list[str]:
        """Problems with ``args`` for ``name`` (unknown or missing keyword arguments).

        ``skip`` leading positional parameters are supplied by the caller (columns, frames).
        """
        if name not in self._items:
            return [f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"]
        params = list(inspect.signature(self._items[name]).parameters.values())[skip:]
        known = {p.name for p in params}
        problems = [
            f"unknown argument {k!r} for {self.kind} {name!r}; expected: {', '.join(sorted(known)) or 'none'}"
            for k in args
            if k not in known
        ]
        for p in params:
            if p.default is inspect.Parameter.empty and p.name not in args and p.kind in (
                p.POSITIONAL_OR_KEYWORD,
                p.KEYWORD_ONLY,
            ):
                problems.append(f"missing argument {p.name!r} for {self.kind} {name!r}")
        return problems
