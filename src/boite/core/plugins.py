"""Plugins looked up by name, with "did you mean" for misspellings.

Built-in plugins register themselves in a ``Plugins`` table; third-party ones
are found through the Python entry-point group ``boite.<kind>`` (for example
``boite.algorithms``), so a package can add an algorithm without touching boite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from boite.core.suggest import did_you_mean
from boite.errors import UserError

T = TypeVar("T")


class UnknownPluginError(UserError):
    def __init__(self, kind: str, name: str, known: list[str], hint: str | None = None) -> None:
        guess = did_you_mean(name, known)
        parts = [f"Did you mean '{guess}'?"] if guess else []
        parts.append(f"Known {kind}: " + ", ".join(sorted(known)) + ".")
        if hint:
            parts.append(hint)
        super().__init__(f"there is no {kind.rstrip('s')} named '{name}'", hint=" ".join(parts))
        self.kind = kind
        self.name = name


class Plugins(Generic[T]):
    def __init__(self, kind: str, *, hint: str | None = None) -> None:
        self.kind = kind
        self.hint = hint
        self._factories: dict[str, Callable[[], T]] = {}
        self._loaded_entry_points = False

    def register(self, name: str, factory: Callable[[], T]) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._factories)

    def get(self, name: str) -> T:
        self._load_entry_points()
        factory = self._factories.get(name)
        if factory is None:
            raise UnknownPluginError(self.kind, name, list(self._factories), self.hint)
        return factory()

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=f"boite.{self.kind}"):
            if ep.name not in self._factories:
                self._factories[ep.name] = ep.load
