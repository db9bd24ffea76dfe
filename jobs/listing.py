"""`halleval list models|methods|benchmarks|metrics|judges`: what can be named in a config.

Read from the registries' source index (pipeline.registry), so listing imports no model code
and takes a fraction of a second.
"""

from __future__ import annotations

import argparse
from typing import Any

KINDS = ("models", "methods", "benchmarks", "metrics", "judges")

# Class attributes worth showing per kind (the defaults a user would otherwise look up).
_DETAILS = {
    "models": ("modality", "default_target_layers", "default_locore_layers", "default_locore_beta"),
    "benchmarks": ("modality", "version", "metrics"),
    "metrics": ("higher_is_better",),
}


def registry(kind: str):
    """The registry listing one kind."""
    if kind == "models":
        from pipeline.models import MODELS as chosen
    elif kind == "methods":
        from pipeline.methods import METHODS as chosen
    elif kind == "benchmarks":
        from pipeline.benchmarks import BENCHMARKS as chosen
    elif kind == "metrics":
        from eval.api import METRICS as chosen
    else:
        from eval.judges import JUDGES as chosen
    return chosen


def _detail(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {'↑' if v else '↓'}" if isinstance(v, bool) else f"{k}={v}" for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def rows(kind: str) -> list[tuple[str, str, str]]:
    """(name, one-line description, defaults) of every registered name of a kind."""
    chosen = registry(kind)
    result = []
    for name in chosen.names():
        entry = chosen.summary(name)
        details = "  ".join(f"{key}: {_detail(entry.attributes[key])}" for key in _DETAILS.get(kind, ())
                            if entry.attributes.get(key) not in (None, (), [], {}, ""))
        result.append((name, entry.summary, details))
    return result


def method_parameters() -> dict[str, list[tuple[str, str, str]]]:
    """Per method name, (key, default, description) of the parameters `--method-args` takes."""
    from pipeline.config import METHOD_CONFIGS

    return {name: [(key, repr(field.default), field.description or "")
                   for key, field in config.model_fields.items() if key != "name"]
            for name, config in METHOD_CONFIGS.items()}


def _handle(args: argparse.Namespace) -> int:
    from pipeline.registry import UnknownNameError, close_matches_hint

    for kind in args.kinds:
        if kind not in KINDS:
            raise UnknownNameError(f"nothing to list as {kind!r}; {close_matches_hint(kind, KINDS, 'kind')}")
    for kind in args.kinds or KINDS:
        listed = rows(kind)
        print(f"{kind} ({len(listed)}):")
        width = max(len(name) for name, _, _ in listed)
        for name, summary, details in listed:
            print(f"  {name:<{width}}  {summary}")
            if details:
                print(f"  {'':<{width}}  {details}")
        if kind == "methods":
            print("  parameters (--method-args KEY=VALUE, or method.KEY in a config), per method:")
            for method, parameters in method_parameters().items():
                print(f"    {method}:" + ("" if parameters else " none"))
                width = max((len(key) for key, _, _ in parameters), default=0)
                for key, default, description in parameters:
                    print(f"      {key:<{width}}  {default:<12} {description}")
        print()
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list the models, methods, benchmarks, metrics and judges a config can name",
        description="List registered names with a one-line description and their defaults.",
    )
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=f"what to list: {', '.join(KINDS)} (default: all)")
    parser.set_defaults(handler=_handle)
