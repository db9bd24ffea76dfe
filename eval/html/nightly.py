"""The report of a nightly: nightly.md and nightly.html beside the night's grid.

It shows tonight's comparisons (regressions first, in red) and, per metric score, a plot of
the value over the ledger's nights, one line per suite cell.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from eval.api import METRICS
from eval.html.page import (
    figure_data_uri,
    fmt,
    img,
    markdown_table,
    new_figure,
    render_page,
)

_COLUMNS = ("run_id", "metric", "score", "old", "new", "diff", "ci_low", "ci_high", "tolerance", "regressed")


def history_uri(ledger: list[dict[str, Any]], metric: str, score: str) -> str | None:
    """`metric.score` over the nights, one line per cell; None without two points."""
    series: dict[str, list[tuple[str, float]]] = {}
    for row in ledger:
        value = json.loads(row["scores"]).get(score) if row["metric"] == metric else None
        if isinstance(value, (int, float)):
            night = f"{row['date'][:16]} {(row['git_commit'] or '')[:7]}"
            series.setdefault(f"{row['model']}/{row['method']}/{row['benchmark']}", []).append((night, value))
    if sum(len(points) for points in series.values()) < 2:
        return None
    figure, axes = new_figure(7.0, 3.0)
    axis = axes[0][0]
    for label, points in series.items():
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    axis.set_title(f"{metric}.{score}")
    axis.tick_params(axis="x", labelrotation=30, labelsize=7)
    axis.legend(fontsize=7)
    return figure_data_uri(figure)


def _comparison_table(comparisons: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
    body = []
    for row in sorted(comparisons, key=lambda r: not r["regressed"]):
        cells = "".join(f"<td>{html.escape(fmt(row[c]))}</td>" for c in _COLUMNS)
        body.append(f'<tr class="{"bad" if row["regressed"] else ""}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_nightly_report(folder: Path, name: str, comparisons: list[dict[str, Any]],
                         ledger: list[dict[str, Any]]) -> Path:
    """Writes nightly.md and nightly.html; returns the HTML path.

    Args:
        folder: the night's grid folder.
        name: the suite's name.
        comparisons: `jobs.nightly.Comparison`s as dicts.
        ledger: the ledger's rows including tonight's.
    """
    regressed = sum(c["regressed"] for c in comparisons)
    verdict = f"{regressed} regression(s) in {len(comparisons)} compared scores"
    (folder / "nightly.md").write_text("\n".join(
        [f"# halleval nightly `{name}`", "", verdict, ""] + markdown_table(comparisons, _COLUMNS)) + "\n")
    plots = []
    # every directed score the ledger holds, in ledger order
    scores = {(row["metric"], score): None for row in ledger for score in METRICS.get(row["metric"]).higher_is_better}
    for metric, score in scores:
        uri = history_uri(ledger, metric, score)
        if uri:
            plots.append(img(uri, f"{metric}.{score} over time"))
    sections = [
        ("Verdict", f'<p class="{"bad" if regressed else ""}">{html.escape(verdict)}</p>'),
        ("Scores against the baseline", _comparison_table(comparisons) if comparisons
         else '<p class="muted">No comparisons: no baseline yet (run with --update-baseline), or a ledger-only report.</p>'),
        ("Scores over time", "".join(plots) or '<p class="muted">One night recorded so far.</p>'),
    ]
    path = folder / "nightly.html"
    path.write_text(render_page(f"halleval nightly {name}", sections))
    return path
