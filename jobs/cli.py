"""The `halleval` command line. Each command lives in its own module under jobs/ and exposes
`add_parser(subparsers)`, which adds its sub-parser and sets `handler` (args -> exit code)."""

from __future__ import annotations

import argparse
import importlib
import sys

from eval.api import ScoringError
from pipeline.api import BenchmarkError
from pipeline.config import ConfigError
from pipeline.registry import UnknownNameError

# Modules that contribute commands, in the order `halleval --help` lists them.
COMMAND_MODULES = ("jobs.run", "jobs.demo", "jobs.score", "jobs.report", "jobs.data", "jobs.verify", "jobs.grid", "jobs.nightly", "jobs.organism")

# Errors that carry a complete one-line message for the user: printed without a traceback.
USER_ERRORS = (ConfigError, BenchmarkError, ScoringError, UnknownNameError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="halleval",
        description="Measure and reduce hallucination in vision-language models on Ray.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except USER_ERRORS as error:
        print(f"halleval {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"halleval {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
