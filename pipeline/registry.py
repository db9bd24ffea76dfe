"""One small registry mechanism for every pluggable part (models, methods, benchmarks, metrics, judges).

Implementations register themselves by decorator, as lm-evaluation-harness registers tasks:

    MODELS = Registry("model")

    @MODELS.register("llava15")
    class Llava15Adapter: ...

An unknown name fails with the close matches, so a config typo names its own fix.

Looking names up does not import the plug-ins: a registry with a plug-in package reads its
modules' source once (`ast`, no import) for literal registrations, `X.register("name")`, and
their docstrings. Validating a config or listing names therefore costs milliseconds instead of
importing torch; `get` imports only the module that registers the name. A name registered any
other way (a computed name, an out-of-tree module) is found by importing every plug-in, the
behaviour before the index existed.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no implementation registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    """A registration found in a plug-in module's source, without importing it.

    Attributes:
        name: the registered name.
        module: the dotted module that registers it.
        summary: the first line of the registered class's or function's docstring, else of the
            module's docstring.
        attributes: the registered class's literal class attributes (e.g. `modality`,
            `default_target_layers`), for `halleval list`.
    """

    name: str
    module: str
    summary: str
    attributes: dict


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, its wrapped lines joined."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    # A sentence ends at a full stop before a capital, so "Alg. 1" and "et al. 2019" do not end it.
    end = re.search(r"(?<!e\.g)(?<!i\.e)\.\s(?=[A-Z])", paragraph)
    return paragraph[: end.start() + 1] if end else paragraph


def _first_line(node: ast.AST) -> str:
    return first_sentence(ast.get_docstring(node))


def _literal_attributes(node: ast.ClassDef) -> dict:
    values = {}
    for statement in node.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            try:
                values[statement.targets[0].id] = ast.literal_eval(statement.value)
            except ValueError:
                continue
    return values


def _literal_keywords(call: ast.Call) -> dict:
    values = {}
    for keyword in call.keywords:
        try:
            values[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            continue
    return values


def _registered_name(call: ast.AST) -> str | None:
    """"name" of a call `SOMETHING.register("name")`, else None."""
    if (
        isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "register"
        and len(call.args) == 1 and not call.keywords
        and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
    ):
        return call.args[0].value
    return None


def scan_module(path: Path, module: str) -> tuple[list[Entry], bool]:
    """The literal registrations of one module's source: decorators and `X.register("n")(obj)`.

    Returns:
        The entries, and whether they are all of the module's registrations (False when it
        calls `.register(...)` with anything but one literal name).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_summary = _first_line(tree)
    entries = []
    complete = True
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register"
                and _registered_name(node) is None):
            complete = False
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            for decorator in node.decorator_list:
                name = _registered_name(decorator)
                if name is not None:
                    attributes = _literal_attributes(node) if isinstance(node, ast.ClassDef) else {}
                    entries.append(Entry(name, module, _first_line(node) or module_summary, attributes))
        elif isinstance(node, ast.Call) and (name := _registered_name(node.func)) is not None:
            # X.register("name")(Factory(key=literal, ...)): the literal keywords are its attributes
            attributes = _literal_keywords(node.args[0]) if node.args and isinstance(node.args[0], ast.Call) else {}
            summary = attributes.get("description") if isinstance(attributes.get("description"), str) else ""
            entries.append(Entry(name, module, first_sentence(summary) or module_summary, attributes))
    return entries, complete


def close_matches_hint(name: str, known: Iterable[str], kind: str) -> str:
    """"did you mean 'x'?" when `name` is close to known names, else the list of them."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}?"
    return f"known {kind}s: {', '.join(known)}"


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
        self._index: dict[str, Entry] | None = None
        self._index_complete = False  # every plug-in registration is in the index

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

    def index(self) -> dict[str, Entry]:
        """name -> Entry of every literal registration in the plug-in package (read, not imported)."""
        if self._index is None:
            self._index, self._index_complete = {}, self._plugin_package is not None
            if self._plugin_package is not None:
                spec = importlib.util.find_spec(self._plugin_package)
                for folder in spec.submodule_search_locations or []:
                    for path in sorted(Path(folder).glob("*.py")):
                        if path.name.startswith("_"):
                            continue
                        entries, complete = scan_module(path, f"{self._plugin_package}.{path.stem}")
                        self._index_complete &= complete
                        for entry in entries:
                            self._index.setdefault(entry.name, entry)
        return self._index

    def _load_unindexed(self) -> None:
        """Imports every plug-in when the index may miss a registration."""
        self.index()
        if not self._index_complete:
            self._load_plugins()

    def _known(self) -> set[str]:
        """Every name known without importing the plug-ins: indexed or already registered."""
        return set(self.index()) | set(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries and name in self.index():
            importlib.import_module(self.index()[name].module)  # only the module that registers it
        if name not in self._entries:
            self._load_unindexed()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def summary(self, name: str) -> Entry:
        """What `halleval list` shows for a name: its indexed entry, or one built from the object."""
        if name in self.index():
            return self.index()[name]
        obj = self.get(name)
        return Entry(name, getattr(obj, "__module__", ""), first_sentence(getattr(obj, "__doc__", None)), {})

    def unknown_message(self, name: str) -> str:
        if not difflib.get_close_matches(name, self._known(), n=3, cutoff=0.5):
            self._load_unindexed()  # a computed registration may still match
        return f"unknown {self.kind} {name!r}; {close_matches_hint(name, self._known(), self.kind)}"

    def validate(self, name: str) -> str:
        """Returns `name` if registered, else raises ValueError (what pydantic validators raise)."""
        if name not in self:
            raise ValueError(self.unknown_message(name))
        return name

    def names(self) -> list[str]:
        """Every registered name; imports the plug-ins only when the index may miss one."""
        self._load_unindexed()
        return sorted(self._known())

    def __contains__(self, name: object) -> bool:
        if name in self._known():
            return True
        self._load_unindexed()
        return name in self._known()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
