"""The report of an ablation grid: grid.md (the table) and grid.html (table and plots).

The table links every cell to its run report. Plots, each drawn only when the grid has the
cells for it:
- a heatmap over alpha x beta of each metric's primary score (the metric says which, e.g.
  CHAIR_s for CHAIR, F1 for POPE), one panel per model;
- the alpha trade-off (the paper's Figure 4): CHAIR_s, CHAIR_i and recall against alpha with
  the per-sample latency on a second axis, per model, at the model's smallest beta;
- hallucination rate per saliency bin per method, pooled over the method's CHAIR cells that
  recorded saliency (bin counts add up across cells).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from eval.api import METRICS
from eval.html.page import (
    Link,
    figure_data_uri,
    html_table,
    img,
    markdown_table,
    new_figure,
    render_page,
)
from eval.metrics.saliency_bins import score_saliency_bins
from eval.report import benchmark_root, saliency_bins_uri

_FIXED = ("model", "checkpoint", "method", "benchmark", "alpha", "beta", "n_samples", "n_errors", "latency_s")


def table_columns(table: pa.Table) -> list[str]:
    """Columns shown: axes, identity, latency and every numeric score."""
    axes = [c for c in table.column_names if c.startswith("axis:")]
    numeric = (pa.types.is_floating, pa.types.is_integer)
    scores = [
        c for c in table.column_names
        if "." in c and not c.startswith("axis:") and any(check(table.schema.field(c).type) for check in numeric)
    ]
    return axes + [c for c in _FIXED if c in table.column_names] + scores


def heatmap_uri(rows: list[dict[str, Any]], column: str, title: str) -> str | None:
    """alpha x beta heatmap of `column`, one panel per model; None when no cell has it."""
    rows = [r for r in rows if r.get(column) is not None]
    models = sorted({r["model"] for r in rows})
    if not models:
        return None
    figure, axes = new_figure(4.5, 3.5, ncols=len(models))
    for axis, model in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == model]
        alphas, betas = sorted({r["alpha"] for r in mine}), sorted({r["beta"] for r in mine})
        grid = [[float("nan")] * len(betas) for _ in alphas]
        for r in mine:
            grid[alphas.index(r["alpha"])][betas.index(r["beta"])] = r[column]
        image = axis.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    axis.text(j, i, f"{value:.3f}", ha="center", va="center", color="white", fontsize=8)
        axis.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
        axis.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        axis.set_xlabel("β (LocoRE)")
        axis.set_ylabel("α (SGRS)")
        axis.set_title(f"{title}: {model}")
        figure.colorbar(image, ax=axis)
    return figure_data_uri(figure)


def tradeoff_uri(rows: list[dict[str, Any]]) -> str | None:
    """The alpha trade-off (paper Fig. 4) per model at its smallest beta; None without CHAIR cells."""
    rows = [r for r in rows if r.get("chair.chair_s") is not None]
    models = sorted({r["model"] for r in rows})
    if not models:
        return None
    figure, axes = new_figure(5.0, 3.5, ncols=len(models))
    for axis, model in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == model]
        beta = min(r["beta"] for r in mine)
        mine = sorted((r for r in mine if r["beta"] == beta), key=lambda r: r["alpha"])
        alphas = [r["alpha"] for r in mine]
        for column, label in (("chair.chair_s", "CHAIR_s"), ("chair.chair_i", "CHAIR_i"), ("chair.recall", "recall")):
            axis.plot(alphas, [r.get(column) if r.get(column) is not None else float("nan") for r in mine],
                      marker="o", label=label)
        axis.set_xlabel("α")
        axis.set_ylabel("rate")
        axis.set_title(f"{model}, β={beta:g}")
        latency = axis.twinx()
        latency.plot(alphas, [r["latency_s"] for r in mine], color="grey", linestyle="--", marker="s", label="latency")
        latency.set_ylabel("latency per sample (s)")
        lines = axis.get_legend_handles_labels()
        extra = latency.get_legend_handles_labels()
        axis.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=7, loc="best")
    return figure_data_uri(figure)


def saliency_bins_by_method(output_dir: Path, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per method, the saliency bins pooled over its CHAIR cells that recorded saliency."""
    pooled: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        run_dir = output_dir / row["run_id"]
        if row["benchmark"] != "chair" or row.get("saliency_mean") is None:
            continue
        root = benchmark_root(run_dir)
        if root is None:
            continue
        # Fixed edges: pooling adds counts bin by bin, which needs the same edges in every cell.
        bins = score_saliency_bins(run_dir, root, tagger=row.get("chair.tagger") or "auto", plot=False,
                                   binning="fixed")["bins"]
        if row["method"] not in pooled:
            pooled[row["method"]] = [{**b, "tokens": 0, "hallucinated": 0} for b in bins]
        for total, part in zip(pooled[row["method"]], bins):
            total["tokens"] += part["tokens"]
            total["hallucinated"] += part["hallucinated"]
    for bins in pooled.values():
        for b in bins:
            b["rate"] = b["hallucinated"] / b["tokens"] if b["tokens"] else None
    return pooled


def primary_columns(table: pa.Table) -> list[tuple[str, str]]:
    """(column, title) of each metric's primary score among the grid's `<metric>.<score>` columns."""
    found = []
    for metric in dict.fromkeys(c.split(".", 1)[0] for c in table.column_names if "." in c and ":" not in c):
        entry = METRICS.get(metric) if metric in METRICS else None
        if entry is not None and f"{metric}.{entry.primary}" in table.column_names:
            arrow = "↑" if entry.higher_is_better[entry.primary] else "↓"
            found.append((f"{metric}.{entry.primary}", f"{metric} {entry.primary} {arrow}"))
    return found


def write_grid_report(grid_dir: Path, name: str, table: pa.Table) -> Path:
    """Writes grid.md and grid.html for a grid.parquet table; returns the HTML path.

    Args:
        grid_dir: <output_dir>/grids/<name>; the cells' run folders are in <output_dir>.
        name: the grid's name.
        table: the grid.parquet table.
    """
    rows = table.to_pylist()
    columns = ["run"] + table_columns(table)
    linked = [{**row, "run": Link(row["run_id"], f"../../{row['run_id']}/report.html")} for row in rows]
    (grid_dir / "grid.md").write_text("\n".join(
        [f"# halleval grid `{name}`", "", f"{len(rows)} cells; plots in grid.html.", ""]
        + markdown_table(linked, columns)
    ) + "\n")
    sections = [("Cells", html_table(linked, columns))]
    swept = len({r["alpha"] for r in rows}) > 1 or len({r["beta"] for r in rows}) > 1
    for column, title in primary_columns(table) if swept else []:
        uri = heatmap_uri(rows, column, title)
        if uri:
            sections.append((f"{title} over α × β", img(uri, f"{title} heatmap")))
    uri = tradeoff_uri(rows)
    if uri:
        sections.append(("α trade-off: hallucination, recall, latency", img(uri, "alpha trade-off")))
    pooled = saliency_bins_by_method(grid_dir.parent.parent, rows)
    if pooled:
        plots = "".join(img(saliency_bins_uri(bins, method), f"saliency bins {method}") for method, bins in pooled.items())
        sections.append(("Saliency vs hallucination per method", plots))
    else:
        sections.append(("Saliency vs hallucination per method",
                         '<p class="muted">No CHAIR cell recorded saliency.</p>'))
    path = grid_dir / "grid.html"
    path.write_text(render_page(f"halleval grid {name}", sections))
    return path
