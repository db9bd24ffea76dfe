"""`halleval compare RUN... [--out DIR]`: a leaderboard of scored runs (model × method × benchmark).

RUN is a run folder or a folder of run folders (e.g. `runs/`). Writes leaderboard.md and a
self-contained leaderboard.html (each cell links to its run's report) and prints the Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _handle(args: argparse.Namespace) -> int:
    from eval.leaderboard import LEADERBOARD_FILE, find_runs, write_leaderboard

    runs = find_runs([Path(p) for p in args.runs])
    out = Path(args.out)
    page = write_leaderboard(runs, out)
    print((out / LEADERBOARD_FILE).read_text())
    print(f"wrote {page} and {out / LEADERBOARD_FILE} ({len(runs)} runs)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="leaderboard of scored runs: model x method x benchmark, with confidence intervals",
        description="Compare scored runs: one row per model and method, one column per benchmark "
        "and metric (its primary score ± 1.96 bootstrap standard errors), the best marked, every "
        "cell linked to its run report. Also `halleval report <folder of runs>`.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders, or folders of run folders (e.g. runs/)")
    parser.add_argument("--out", default="compare", help="folder for leaderboard.md/.html (default: compare)")
    parser.set_defaults(handler=_handle)
