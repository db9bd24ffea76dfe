"""A human-readable Markdown report of a scored run (`report.md` in the run folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.scoring import load_scores
from pipeline.schema import read_generations

REPORT_FILE = "report.md"
EXAMPLES = 3


def headline_scores(metric_output: dict[str, Any]) -> dict[str, Any]:
    """The scalar entries of a metric's output (per-item lists and nested tables left out)."""
    return {k: v for k, v in metric_output.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def _format(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_markdown(run_dir: Path) -> str:
    scores = load_scores(run_dir)
    lines = [
        f"# halleval run `{scores['run_id']}`",
        "",
        f"- model: `{scores['model']}` ({scores.get('checkpoint', '')})",
        f"- method: `{scores['method']}`",
        f"- benchmark: `{scores['benchmark']}`",
        f"- config hash: `{scores['config_hash']}`",
        f"- samples: {scores['n_samples']}, with errors: {scores['n_errors']}",
        "",
        "## Scores",
        "",
        "| metric | score | value |",
        "|---|---|---|",
    ]
    for metric, output in scores["metrics"].items():
        for key, value in headline_scores(output).items():
            lines.append(f"| {metric} | {key} | {_format(value)} |")
    table = read_generations(run_dir, columns=["sample_id", "prompt", "output_text", "error"])
    rows = table.slice(0, EXAMPLES).to_pylist()
    lines += ["", f"## First {len(rows)} outputs", ""]
    for row in rows:
        answer = row["output_text"] if row["error"] is None else f"ERROR: {row['error']}"
        lines += [f"**{row['sample_id']}**: {row['prompt']}", "", f"> {answer}", ""]
    return "\n".join(lines)


def write_report(run_dir: Path) -> Path:
    path = Path(run_dir) / REPORT_FILE
    path.write_text(render_markdown(run_dir))
    return path
