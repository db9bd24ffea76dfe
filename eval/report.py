"""The report of a scored run: `report.md` and a self-contained `report.html` in the run folder.

Both show the scores (each headline score with its direction and bootstrap standard error),
the per-benchmark breakdown (e.g. MME per task) and example outputs in sample-id order with
each sample's outcome from samples.parquet (POPE: label, prediction, correct; MME: gt,
prediction; judges: verdict and score). The sections fit the benchmark: only CHAIR runs get
the saliency-vs-hallucination plot and captions with each object word underlined green (in
the image) or red (hallucinated), each generated token shaded by its saliency when recorded.
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
from eval.scoring import DESCRIPTIVE_KEYS, load_scores, read_samples
from pipeline.schema import read_generations

REPORT_FILE = "report.md"
HTML_FILE = "report.html"
EXAMPLES = 3  # CHAIR captions, shown in full
EXAMPLE_ROWS = 10  # short answers, shown as a table
_SCORE_COLUMNS = ("metric", "score", "value", "stderr", "better")
# Outcome fields too bulky or repetitive for the examples table (they stay in samples.parquet).
_HIDDEN_OUTCOME_FIELDS = ("caption", "gt_objects", "tagger", "scored", "failed", "judge", "pair", "question", "image")


def headline_scores(metric_output: dict[str, Any]) -> dict[str, Any]:
    """The scalar entries of a metric's output (per-item lists, nested tables and the entries
    that describe the scores, such as `primary`, left out)."""
    return {k: v for k, v in metric_output.items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool) and k not in DESCRIPTIVE_KEYS}


def direction(metric_output: dict[str, Any], key: str) -> str:
    """↑ / ↓ for a score whose metric declares higher_is_better, else blank."""
    return {True: "↑", False: "↓"}.get(metric_output.get("higher_is_better", {}).get(key), "")


def score_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """(metric, score, value, stderr, better) rows of every scalar score; headline scores
    (those with a direction) first, then counts and labels."""
    rows = []
    for metric, output in scores["metrics"].items():
        stderr = output.get("stderr", {})
        values = headline_scores(output)
        ordered = [k for k in output.get("higher_is_better", {}) if k in values] + [
            k for k in values if k not in output.get("higher_is_better", {})]
        rows += [{"metric": metric, "score": key, "value": values[key], "stderr": stderr.get(key),
                  "better": direction(output, key)} for key in ordered]
    return rows


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
    rows, columns = example_rows(run_dir, EXAMPLE_ROWS)
    lines += ["", f"## First {len(rows)} samples (by sample id)", ""]
    lines += markdown_table([{k: _markdown_cell(v) for k, v in row.items()} for row in rows], columns)
    return "\n".join(lines) + "\n"


def _markdown_cell(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).replace("|", "\\|")
    return ", ".join(map(str, value)) if isinstance(value, list) else value


def example_rows(run_dir: Path, limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The first `limit` samples by sample id: prompt, output (or error) and every metric's
    outcome fields from samples.parquet; and the columns to show."""
    generations = read_generations(run_dir, columns=["sample_id", "prompt", "output_text", "error"])
    first = sorted(generations.to_pylist(), key=lambda r: r["sample_id"])[:limit]
    samples = read_samples(run_dir)
    outcomes = {}
    if samples is not None:
        wanted = {r["sample_id"] for r in first}
        outcomes = {r["sample_id"]: r for r in samples.to_pylist() if r["sample_id"] in wanted}
    rows, columns = [], ["sample_id", "prompt", "output"]
    for row in first:
        shown = {"sample_id": row["sample_id"], "prompt": row["prompt"] or "",
                 "output": row["output_text"] if row["error"] is None else f"ERROR: {row['error']}"}
        for key, value in outcomes.get(row["sample_id"], {}).items():
            if key != "sample_id" and key.split(".", 1)[1] not in _HIDDEN_OUTCOME_FIELDS:
                shown[key] = value
                if key not in columns:
                    columns.append(key)
        rows.append(shown)
    return rows, columns


def benchmark_root(run_dir: Path) -> Path | None:
    """The benchmark folder from the run's config.yaml (written by `halleval run`)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    return Path(yaml.safe_load(path.read_text())["benchmark"]["root"])


def saliency_bins_uri(bins: list[dict[str, Any]], title: str) -> str:
    """Bar chart of hallucination rate per saliency bin, as a data URI."""
    from eval.metrics.saliency_bins import bin_label  # CHAIR's NLP stack only for CHAIR reports

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
    from eval.metrics.saliency_bins import score_saliency_bins

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


def _captions_section(run_dir: Path, scores: dict[str, Any]) -> str:
    """CHAIR captions (first by sample id) with object words marked and tokens shaded by saliency."""
    from eval.metrics.saliency_bins import object_tokens

    table = read_generations(
        run_dir, columns=["sample_id", "prompt", "output_text", "token_offsets", "saliency", "metadata", "error"]
    )
    rows = sorted((row for row in table.to_pylist() if row["error"] is None), key=lambda r: r["sample_id"])[:EXAMPLES]
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
    if "chair" in scores["metrics"]:
        sections.append(("Saliency vs hallucination", _saliency_section(run_dir, scores)))
        claims_section = _claims_section(run_dir, scores)
        if claims_section:
            sections.append(("Claims: the paper's saliency findings", claims_section))
        sections.append(("Example captions", _captions_section(run_dir, scores)))
    rows, columns = example_rows(run_dir, EXAMPLE_ROWS)
    sections.append((f"First {len(rows)} samples (by sample id)", html_table(rows, columns)))
    return render_page(f"halleval run {scores['run_id']}", sections)


def write_report(run_dir: Path) -> Path:
    """Writes report.md and report.html into the run folder; returns the Markdown path."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT_FILE
    path.write_text(render_markdown(run_dir))
    (run_dir / HTML_FILE).write_text(render_html(run_dir))
    return path
