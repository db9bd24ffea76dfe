"""One small registry mechanism for every pluggable part (models, methods, benchmarks, metrics, judges).

Implementations register themselves by decorator, as lm-evaluation-harness registers tasks:

    MODELS = Registry("model")

    @MODELS.register("llava15")
    class Llava15Adapter: ...

An unknown name fails with the close matches, so a config typo names its own fix.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no implementation registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps snake_case names to implementations of one kind.

    Args:
        kind: what is registered ("model", "method", ...), used in error messages.
        plugin_package: a package whose modules are imported on first lookup, so every
            implementation in it has registered before a name is resolved.
    """

    def __init__(self, kind: str, plugin_package: str | None = None) -> None:
        self.kind = kind
        self._plugin_package = plugin_package
        self._entries: dict[str, T] = {}
        self._loaded = plugin_package is None

    def register(self, name: str) -> Callable[[T], T]:
        if name != name.lower() or " " in name:
            raise ValueError(f"{self.kind} names are snake_case, got {name!r}")

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def _load_plugins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self._plugin_package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._plugin_package}.{info.name}")

    def get(self, name: str) -> T:
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        self._load_plugins()
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else (
            f"known {self.kind}s: {', '.join(sorted(self._entries))}"
        )
        return f"unknown {self.kind} {name!r}; {hint}"

    def validate(self, name: str) -> str:
        """Returns `name` if registered, else raises ValueError (what pydantic validators raise)."""
        if name not in self:
            raise ValueError(self.unknown_message(name))
        return name

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
