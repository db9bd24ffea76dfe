"""`halleval report RUN_DIR`: (re)writes a scored run's report and prints where it is."""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.report import write_report


def _handle(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist; pass <output_dir>/<run_id>")
    path = write_report(run_dir)
    print(path.read_text())
    print(f"\nwrote {path}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render the report of a scored run",
        description="Render report.md for a run folder that holds generations/ and scores.json.",
    )
    parser.add_argument("run_dir", help="a run folder, <output_dir>/<run_id>")
    parser.set_defaults(handler=_handle)
