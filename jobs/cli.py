"""The `halleval` command line. Each command lives in its own module under jobs/ and exposes
`add_parser(subparsers)`, which adds its sub-parser and sets `handler` (args -> exit code).

Start-up is lazy, as lm-evaluation-harness's CLI is: the command names and their one-line help
are read from the modules' source (`ast`, no import), and only the module of the command being
run is imported. `halleval --help` and a config check therefore never import torch or Ray.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from jobs.console import VERBOSE_ENV
from pipeline.api import BenchmarkError
from pipeline.config import ConfigError
from pipeline.registry import UnknownNameError

# Modules that contribute commands, in the order `halleval --help` lists them.
COMMAND_MODULES = (
    "jobs.run", "jobs.listing", "jobs.demo", "jobs.score", "jobs.report", "jobs.compare", "jobs.tracking", "jobs.data", "jobs.verify",
    "jobs.grid", "jobs.nightly", "jobs.organism",
)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that carry a complete one-line message for the user: printed without a traceback.

    ScoringError and RunLockedError are looked up only when their modules are already imported
    (the command that raises them imported them), so start-up does not pay for pyarrow.
    """
    errors: tuple[type[BaseException], ...] = (ConfigError, BenchmarkError, UnknownNameError, FileNotFoundError)
    scoring, lease = sys.modules.get("eval.api"), sys.modules.get("pipeline.lease")
    return errors + ((scoring.ScoringError,) if scoring else ()) + ((lease.RunLockedError,) if lease else ())


def command_summaries(module: str) -> list[tuple[str, str]]:
    """(name, help) of the commands a module adds, read from its source without importing it.

    A module whose `add_parser` calls do not name the command with a literal string is
    imported instead, and its parser built to read them.
    """
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "add_parser":
            calls = [
                call for call in ast.walk(node)
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "add_parser" and isinstance(call.func.value, ast.Name)
                and call.func.value.id == node.args.args[0].arg
            ]
            found = []
            for call in calls:
                if not (call.args and isinstance(call.args[0], ast.Constant)):
                    break
                help_text = next((k.value for k in call.keywords if k.arg == "help"), None)
                found.append((call.args[0].value, help_text.value if isinstance(help_text, ast.Constant) else ""))
            else:
                return found
    subparsers = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).add_parser(subparsers)
    return [(name, "") for name in subparsers.choices]


def _requested_command(argv: list[str]) -> str | None:
    """The first argument that is not an option: the command, if any."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; every command's parser in full, or only `command`'s (others as stubs).

    Args:
        command: the command about to run; its module alone is imported. None imports all;
            a name no module adds (e.g. "") imports none.
    """
    parser = argparse.ArgumentParser(
        prog="halleval",
        description="Measure and reduce hallucination in vision-language models on Ray.",
    )
    parser.add_argument("--verbose", action="store_true", help="show Ray's and Ray Data's own logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        summaries = command_summaries(module)
        if command is None or command in dict(summaries):
            importlib.import_module(module).add_parser(subparsers)
            for name, _ in summaries:
                subparsers.choices[name].add_argument(
                    "--verbose", action="store_true", default=argparse.SUPPRESS,
                    help="show Ray's and Ray Data's own logs (they are off by default)",
                )
        else:
            for name, help_text in summaries:
                subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_requested_command(argv) or "")  # "": no command, stubs only
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        os.environ[VERBOSE_ENV] = "1"
    try:
        return int(args.handler(args) or 0)
    except _user_errors() as error:
        print(f"halleval {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `halleval list | head`: the reader has what it wanted
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"halleval {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
