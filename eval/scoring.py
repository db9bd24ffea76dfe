"""Scores a finished run: one Ray task per metric reads the run's Parquet and scores it.

The result, `scores.json` in the run folder, holds the run's identity, its row counts and
every metric's output (the same dict `halleval score ...` prints for that metric).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ray

from eval.api import METRICS, ScoringContext
from pipeline.schema import read_generations

SCORES_FILE = "scores.json"


def score_metric(metric_name: str, context: ScoringContext) -> dict[str, Any]:
    """Scores one metric on a run's generations (runs inside a Ray task or in-process)."""
    metric = METRICS.get(metric_name)()
    return metric.score_run(read_generations(context.run_dir), context)


_score_metric_task = ray.remote(num_cpus=0.25)(score_metric)


def score_run(
    context: ScoringContext, metric_names: tuple[str, ...], identity: dict[str, Any]
) -> dict[str, Any]:
    """Scores every metric of a run as parallel Ray tasks and writes `scores.json`.

    Args:
        context: the run folder (holding generations/), its benchmark folder, judge and tagger.
        metric_names: names in the METRICS registry.
        identity: run_id, config_hash, model, method, benchmark: copied into the output.
    """
    for name in metric_names:
        METRICS.get(name)  # an unknown metric fails here, before any task starts
    pending = {name: _score_metric_task.remote(name, context) for name in metric_names}
    generations = read_generations(context.run_dir, columns=["error", "n_generated"])
    errors = generations.column("error").to_pylist()
    scores = {
        **identity,
        "n_samples": generations.num_rows,
        "n_errors": sum(e is not None for e in errors),
        "metrics": {name: ray.get(ref) for name, ref in pending.items()},
    }
    (Path(context.run_dir) / SCORES_FILE).write_text(json.dumps(scores, indent=2, sort_keys=False))
    return scores


def load_scores(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / SCORES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `halleval run` on this config first")
    return json.loads(path.read_text())
