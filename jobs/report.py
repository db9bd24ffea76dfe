"""`halleval report PATH`: (re)writes the Markdown and HTML report of a run, a grid or a ledger.

PATH is a run folder (holds scores.json), a grid or nightly folder (holds grid.parquet), or a
nightly ledger (.parquet file), whose history page is written beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq

from eval.html.grid import write_grid_report
from eval.html.nightly import write_nightly_report
from eval.report import HTML_FILE, write_report
from eval.scoring import SCORES_FILE
from jobs.grid import GRID_FILE
from jobs.nightly import read_ledger


def render(path: Path) -> Path:
    """Writes the report that fits `path` and returns the HTML page's path.

    Raises:
        FileNotFoundError: `path` is none of a scored run, a grid folder or a ledger.
    """
    if path.is_file() and path.suffix == ".parquet":
        return write_nightly_report(path.parent, path.stem, [], read_ledger(path))
    if (path / SCORES_FILE).is_file():
        write_report(path)
        return path / HTML_FILE
    if (path / GRID_FILE).is_file():
        return write_grid_report(path, path.name, pq.read_table(path / GRID_FILE))
    raise FileNotFoundError(
        f"{path} is not a scored run folder (scores.json), a grid folder ({GRID_FILE}) or a ledger (.parquet)"
    )


def _handle(args: argparse.Namespace) -> int:
    page = render(Path(args.path))
    print(f"wrote {page} and its Markdown beside it")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render the Markdown + HTML report of a run, a grid or a nightly ledger",
        description="Render report.md/report.html for a scored run folder, grid.md/grid.html for a "
        "grid folder, or the score history of a nightly ledger (.parquet). Pages are "
        "self-contained: plots are embedded, nothing is fetched.",
    )
    parser.add_argument("path", help="<output_dir>/<run_id>, <output_dir>/grids/<name>, or LEDGER.parquet")
    parser.set_defaults(handler=_handle)
