"""`halleval report PATH`: (re)writes the Markdown and HTML report of a run, a grid, a folder of
runs or a ledger.

PATH is a run folder (holds scores.json), a grid or nightly folder (holds grid.parquet), a
folder of run folders (e.g. `runs/`: a leaderboard, as `halleval compare` writes), or a nightly
ledger (.parquet file), whose history page is written beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

GRID_FILE = "grid.parquet"  # jobs.grid's name for it, without importing jobs.grid (Ray, torch)


def render(path: Path) -> Path:
    """Writes the report that fits `path` and returns the HTML page's path.

    Raises:
        FileNotFoundError: `path` is none of a scored run, a grid folder, a folder of runs or a
            ledger.
    """
    from eval.scoring import SCORES_FILE

    if path.is_file() and path.suffix == ".parquet":
        from eval.html.nightly import write_nightly_report
        from jobs.nightly import read_ledger

        return write_nightly_report(path.parent, path.stem, [], read_ledger(path))
    if (path / SCORES_FILE).is_file():
        from eval.report import HTML_FILE, write_report

        write_report(path)
        return path / HTML_FILE
    if (path / GRID_FILE).is_file():
        import pyarrow.parquet as pq

        from eval.html.grid import write_grid_report

        return write_grid_report(path, path.name, pq.read_table(path / GRID_FILE))
    if path.is_dir() and any((p / SCORES_FILE).is_file() for p in path.iterdir()):
        from eval.leaderboard import find_runs, write_leaderboard

        return write_leaderboard(find_runs([path]), path, title=f"halleval leaderboard: {path}")
    raise FileNotFoundError(
        f"{path} is not a scored run folder (scores.json), a grid folder ({GRID_FILE}), a folder of "
        "run folders or a ledger (.parquet)"
    )


def _handle(args: argparse.Namespace) -> int:
    page = render(Path(args.path))
    print(f"wrote {page} and its Markdown beside it")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render the Markdown + HTML report of a run, a grid, a folder of runs or a ledger",
        description="Render report.md/report.html for a scored run folder, grid.md/grid.html for a "
        "grid folder, leaderboard.md/leaderboard.html for a folder of runs (e.g. runs/), or the "
        "score history of a nightly ledger (.parquet). Pages are self-contained: plots are "
        "embedded, nothing is fetched.",
    )
    parser.add_argument("path", help="<output_dir>/<run_id>, <output_dir>/grids/<name>, <output_dir>, or LEDGER.parquet")
    parser.set_defaults(handler=_handle)
