"""A leaderboard of scored runs: model × method × benchmark, in Markdown and self-contained HTML.

Every run folder holds scores.json (eval.scoring); its metrics say which scores are headline
scores, their direction and their bootstrap standard error. The leaderboard has one row per
model (checkpoint) and method, and one column per benchmark and metric showing the metric's
primary score with a 95% interval (± 1.96 standard errors), the best of each column in bold;
a second table lists every headline score. Rows that share model and method but differ in a
method parameter (a grid's alpha, say) are told apart by that parameter. Each run links to
its report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from eval.html.page import Link, html_table, markdown_table, render_page
from eval.scoring import SCORES_FILE, load_scores

LEADERBOARD_FILE = "leaderboard.md"
LEADERBOARD_HTML = "leaderboard.html"
Z_95 = 1.96


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders among `paths`: each path that holds scores.json, or the scored run folders
    directly inside it (a folder of runs), sorted by name.

    Raises:
        FileNotFoundError: a path is neither, naming it.
    """
    runs: list[Path] = []
    for path in paths:
        if (path / SCORES_FILE).is_file():
            runs.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if (p / SCORES_FILE).is_file()) if path.is_dir() else []
        if not inside:
            raise FileNotFoundError(f"{path} is not a scored run folder and holds none (no {SCORES_FILE}); "
                                    "run `halleval run` first")
        runs += inside
    return list(dict.fromkeys(runs))


def _method_params(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    return (yaml.safe_load(path.read_text()) or {}).get("method", {})


def interval(value: Any, stderr: float | None) -> str:
    """`0.8125 ± 0.0412` (95%), or the bare value without a standard error."""
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:.4f} ± {Z_95 * stderr:.4f}" if stderr is not None else f"{value:.4f}"


def run_entries(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """One entry per run: identity, its method label and its metrics' outputs."""
    entries = [{"dir": run_dir, "scores": load_scores(run_dir), "params": _method_params(run_dir)}
               for run_dir in run_dirs]
    # Method parameters that differ among runs of the same model and method name the variant.
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for entry in entries:
        scores = entry["scores"]
        groups.setdefault((scores["model"], scores.get("checkpoint"), scores["method"]), []).append(entry)
    for members in groups.values():
        keys = sorted({k for m in members for k in m["params"]} - {"name"})
        differing = [k for k in keys if len({repr(m["params"].get(k)) for m in members}) > 1]
        for member in members:
            variant = ", ".join(f"{k}={member['params'].get(k)}" for k in differing)
            member["label"] = member["scores"]["method"] + (f" ({variant})" if variant else "")
    return entries


def _best(values: list[tuple[int, float]], higher: bool) -> int | None:
    if not values:
        return None
    return (max if higher else min)(values, key=lambda item: item[1])[0]


def leaderboard(run_dirs: list[Path], page_dir: Path) -> tuple[list[dict], list[str], list[dict], list[str]]:
    """(leaderboard rows, their columns, every-score rows, their columns); links relative to page_dir."""
    entries = run_entries(run_dirs)
    rows: dict[tuple, dict[str, Any]] = {}
    columns = ["model", "method"]
    long_rows = []
    best: dict[str, tuple[bool, list[tuple[tuple, float]]]] = {}
    for entry in entries:
        scores = entry["scores"]
        key = (scores["model"], scores.get("checkpoint"), entry["label"])
        row = rows.setdefault(key, {"model": f"{scores['model']} ({scores.get('checkpoint')})", "method": entry["label"]})
        link = os.path.relpath(entry["dir"] / "report.html", page_dir)
        for metric, output in scores["metrics"].items():
            directions = output.get("higher_is_better", {})
            stderr = output.get("stderr", {})
            primary = output.get("primary") or next(iter(directions), None)
            if primary is None:
                continue
            name = primary if metric == scores["benchmark"] else f"{metric}.{primary}"
            column = f"{scores['benchmark']} {name} {'↑' if directions[primary] else '↓'}"
            if column not in columns:
                columns.append(column)
            row[column] = Link(interval(output.get(primary), stderr.get(primary)), link)
            if isinstance(output.get(primary), (int, float)):
                best.setdefault(column, (directions[primary], []))[1].append((key, output[primary]))
            for score, higher in directions.items():
                value, error = output.get(score), stderr.get(score)
                numeric = isinstance(value, (int, float)) and error is not None
                long_rows.append({
                    "model": row["model"], "method": entry["label"], "benchmark": scores["benchmark"],
                    "metric": metric, "score": score, "better": "↑" if higher else "↓", "value": value,
                    "stderr": error,
                    "95% CI": f"[{value - Z_95 * error:.4f}, {value + Z_95 * error:.4f}]" if numeric else "–",
                    "n": scores["n_samples"], "errors": scores["n_errors"],
                    "run": Link(scores["run_id"], link),
                })
    for column, (higher, values) in best.items():
        if len(values) > 1:
            winner = _best(values, higher)
            rows[winner][column] = Link(f"★ {rows[winner][column].text}", rows[winner][column].href)
    long_columns = ["model", "method", "benchmark", "metric", "score", "better", "value", "stderr", "95% CI",
                    "n", "errors", "run"]
    return list(rows.values()), columns, long_rows, long_columns


def write_leaderboard(run_dirs: list[Path], out_dir: Path, title: str = "halleval leaderboard") -> Path:
    """Writes leaderboard.md and leaderboard.html into out_dir; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, columns, long_rows, long_columns = leaderboard(run_dirs, out_dir)
    note = (f"{len(run_dirs)} runs. Each cell: the metric's primary score ± 1.96 bootstrap standard errors "
            "(95%); ★ marks the best of a column; ↑ higher is better, ↓ lower is better.")
    (out_dir / LEADERBOARD_FILE).write_text("\n".join(
        [f"# {title}", "", note, ""] + markdown_table(rows, columns)
        + ["", "## Every headline score", ""] + markdown_table(long_rows, long_columns)
    ) + "\n")
    sections = [("Leaderboard", f"<p>{note}</p>" + html_table(rows, columns)),
                ("Every headline score", html_table(long_rows, long_columns))]
    path = out_dir / LEADERBOARD_HTML
    path.write_text(render_page(title, sections))
    return path

