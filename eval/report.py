"""The report of a scored run: `report.md` and a self-contained `report.html` in the run folder.

Both show the scores table and the per-benchmark breakdown (e.g. MME per task, POPE's confusion
counts). The HTML page adds the saliency-vs-hallucination plot (CHAIR runs that recorded
saliency) and example outputs: CHAIR captions with each object word underlined green (in the
image) or red (hallucinated), and each generated token shaded by its saliency when recorded.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import yaml

from eval.api import ScoringError
from eval.html.page import (
    figure_data_uri,
    fmt,
    html_table,
    img,
    markdown_table,
    new_figure,
    render_page,
)
from eval.metrics.saliency_bins import bin_label, object_tokens, score_saliency_bins
from eval.scoring import load_scores
from pipeline.schema import read_generations

REPORT_FILE = "report.md"
HTML_FILE = "report.html"
EXAMPLES = 3
_SCORE_COLUMNS = ("metric", "score", "value")


def headline_scores(metric_output: dict[str, Any]) -> dict[str, Any]:
    """The scalar entries of a metric's output (per-item lists and nested tables left out)."""
    return {k: v for k, v in metric_output.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def score_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """(metric, score, value) rows of every headline score."""
    return [
        {"metric": metric, "score": key, "value": value}
        for metric, output in scores["metrics"].items()
        for key, value in headline_scores(output).items()
    ]


def breakdown_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the metrics' nested per-part tables (e.g. MME's per-task scores)."""
    rows = []
    for metric, output in scores["metrics"].items():
        for key, table in output.items():
            if isinstance(table, dict) and table and all(isinstance(v, dict) for v in table.values()):
                rows += [{"metric": metric, "table": key, "part": part, **values} for part, values in table.items()]
    return rows


def _identity_lines(scores: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("model", f"{scores['model']} ({scores.get('checkpoint', '')})"),
        ("method", scores["method"]),
        ("benchmark", f"{scores['benchmark']} (reader {scores.get('benchmark_version', '?')})"),
        ("config hash", scores["config_hash"]),
        ("samples", f"{scores['n_samples']}, with errors: {scores['n_errors']}"),
    ]


def render_markdown(run_dir: Path) -> str:
    scores = load_scores(run_dir)
    lines = [f"# halleval run `{scores['run_id']}`", ""]
    lines += [f"- {name}: `{value}`" for name, value in _identity_lines(scores)]
    lines += ["", "## Scores", ""] + markdown_table(score_rows(scores), _SCORE_COLUMNS)
    breakdown = breakdown_rows(scores)
    if breakdown:
        columns = list(dict.fromkeys(k for row in breakdown for k in row))
        lines += ["", "## Breakdown", ""] + markdown_table(breakdown, columns)
    table = read_generations(run_dir, columns=["sample_id", "prompt", "output_text", "error"])
    rows = table.slice(0, EXAMPLES).to_pylist()
    lines += ["", f"## First {len(rows)} outputs", ""]
    for row in rows:
        answer = row["output_text"] if row["error"] is None else f"ERROR: {row['error']}"
        lines += [f"**{row['sample_id']}**: {row['prompt']}", "", f"> {answer}", ""]
    return "\n".join(lines)


def benchmark_root(run_dir: Path) -> Path | None:
    """The benchmark folder from the run's config.yaml (written by `halleval run`)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    return Path(yaml.safe_load(path.read_text())["benchmark"]["root"])


def saliency_bins_uri(bins: list[dict[str, Any]], title: str) -> str:
    """Bar chart of hallucination rate per saliency bin, as a data URI."""
    figure, axes = new_figure()
    axis = axes[0][0]
    axis.bar([bin_label(b) for b in bins], [b["rate"] or 0.0 for b in bins], color="#c0504d")
    axis.set_title(title)
    axis.set_xlabel("saliency of the object token")
    axis.set_ylabel("hallucination rate")
    axis.set_ylim(0, 1)
    axis.tick_params(axis="x", labelrotation=45)
    return figure_data_uri(figure)


def _saliency_section(run_dir: Path, scores: dict[str, Any]) -> str:
    if "chair" not in scores["metrics"]:
        return '<p class="muted">Saliency vs hallucination needs CHAIR captions; this run has none.</p>'
    root = benchmark_root(run_dir)
    saliency = read_generations(run_dir, columns=["saliency"]).column("saliency")
    if root is None or saliency.null_count == len(saliency):
        return ('<p class="muted">No saliency recorded: run SGRS, or set method.record_saliency: true.</p>')
    result = score_saliency_bins(run_dir, root, tagger=scores["metrics"]["chair"].get("tagger", "auto"), plot=False)
    summary = (
        f"<p>{result['n_object_tokens']} object tokens, {result['binning']['mode']} bins; mean saliency correct "
        f"{fmt(result['mean_saliency_correct'])}, hallucinated {fmt(result['mean_saliency_hallucinated'])}.</p>"
    )
    return summary + img(saliency_bins_uri(result["bins"], scores["run_id"]), "saliency vs hallucination")


def _claims_section(run_dir: Path, scores: dict[str, Any]) -> str | None:
    """The claims report (eval.claims) of a CHAIR run that recorded saliency, else None."""
    from eval.claims import BIN_COLUMNS, CLAIM_COLUMNS, bin_rows, claim_rows, claims, summary_line, threshold_line

    root = benchmark_root(run_dir)
    if "chair" not in scores["metrics"] or root is None:
        return None
    saliency = read_generations(run_dir, columns=["saliency"]).column("saliency")
    if saliency.null_count == len(saliency):
        return None
    try:
        result = claims(run_dir, root, tagger=scores["metrics"]["chair"].get("tagger", "auto"))
    except ScoringError as error:  # saliency recorded, but no caption names an object
        return f'<p class="muted">{html.escape(str(error))}</p>'
    return (f"<p>{html.escape(summary_line(result))}</p>" + html_table(claim_rows(result), CLAIM_COLUMNS)
            + f"<p>{html.escape(threshold_line(result))}</p>" + html_table(bin_rows(result), BIN_COLUMNS))


def _token_spans(row: dict[str, Any], marks: dict[int, bool], top: float) -> str:
    """The caption as one span per generated token: saliency as blue shade, objects underlined."""
    text, offsets = row["output_text"] or "", row["token_offsets"] or []
    saliency = row["saliency"]
    ends = list(offsets[1:]) + [len(text)]
    parts = [html.escape(text[: offsets[0]])] if offsets else [html.escape(text)]
    for index, (start, end) in enumerate(zip(offsets, ends)):
        classes = ["tok"] + ([("obj-hall" if marks[index] else "obj-ok")] if index in marks else [])
        style, title = "", ""
        if saliency is not None:
            share = min(max(saliency[index] / top, 0.0), 1.0) if top > 0 else 0.0
            style = f' style="background: rgba(33, 102, 172, {0.6 * share:.2f})"'
            title = f' title="S = {saliency[index]:.4g}"'
        parts.append(f'<span class="{" ".join(classes)}"{style}{title}>{html.escape(text[start:end])}</span>')
    return "".join(parts)


def _examples_section(run_dir: Path, scores: dict[str, Any]) -> str:
    table = read_generations(
        run_dir, columns=["sample_id", "prompt", "output_text", "token_offsets", "saliency", "metadata", "error"]
    )
    rows = [row for row in table.to_pylist() if row["error"] is None][:EXAMPLES]
    chair = scores["metrics"].get("chair")
    captions = {item["image_id"]: item for item in chair["per_caption"]} if chair else {}
    top = max((max(r["saliency"]) for r in rows if r["saliency"]), default=0.0)
    parts = [(
        '<p class="legend"><span class="tok obj-ok">object in the image</span>'
        '<span class="tok obj-hall">hallucinated object</span>'
        '<span class="tok" style="background: rgba(33,102,172,0.6)">high saliency</span></p>'
    )]
    for row in rows:
        caption = captions.get(json.loads(row["metadata"] or "{}").get("image_id"), {})
        marks: dict[int, bool] = {}
        if caption and row["token_offsets"]:
            marks, _ = object_tokens(row["output_text"] or "", row["token_offsets"], caption["gt_objects"],
                                     chair.get("tagger", "auto"))
        hallucinated = caption.get("hallucinated", [])
        note = f' <span class="bad">hallucinated: {html.escape(", ".join(hallucinated))}</span>' if hallucinated else ""
        parts.append(
            f"<p><b>{html.escape(row['sample_id'])}</b>: {html.escape(row['prompt'] or '')}{note}</p>"
            f'<div class="caption">{_token_spans(row, marks, top)}</div>'
        )
    return "".join(parts)


def render_html(run_dir: Path) -> str:
    """The run's self-contained HTML page."""
    run_dir = Path(run_dir)
    scores = load_scores(run_dir)
    identity = html_table([{"field": k, "value": v} for k, v in _identity_lines(scores)], ("field", "value"))
    sections = [("Run", identity), ("Scores", html_table(score_rows(scores), _SCORE_COLUMNS))]
    breakdown = breakdown_rows(scores)
    if breakdown:
        sections.append(("Breakdown", html_table(breakdown, list(dict.fromkeys(k for r in breakdown for k in r)))))
    sections.append(("Saliency vs hallucination", _saliency_section(run_dir, scores)))
    claims_section = _claims_section(run_dir, scores)
    if claims_section:
        sections.append(("Claims: the paper's saliency findings", claims_section))
    sections.append(("Example outputs", _examples_section(run_dir, scores)))
    return render_page(f"halleval run {scores['run_id']}", sections)


def write_report(run_dir: Path) -> Path:
    """Writes report.md and report.html into the run folder; returns the Markdown path."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT_FILE
    path.write_text(render_markdown(run_dir))
    (run_dir / HTML_FILE).write_text(render_html(run_dir))
    return path
