"""Scores a finished run: one Ray task per metric reads the run's Parquet and scores it.

Each metric's per-sample function gives one outcome per row and its aggregate function the
scores (eval.api.Metric). The results, in the run folder:

- `scores.json`: the run's identity, its row counts and every metric's output (the same dict
  `halleval score ...` prints for that metric), plus `higher_is_better` and a bootstrap
  standard error (`stderr`) for each headline score, and how the bootstrap was drawn.
- `samples.parquet`: one row per sample, `sample_id` plus each metric's outcome fields as
  `<metric>.<field>` columns (e.g. `pope.pred`, `pope.correct`, `chair.hallucinated`), so it
  joins with the generations on `sample_id`.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.api import METRICS, Metric, Outcome, ScoringContext, ScoringError

if TYPE_CHECKING:
    import pyarrow as pa

SCORES_FILE = "scores.json"
SAMPLES_FILE = "samples.parquet"
BOOTSTRAP_SEED = 0
DESCRIPTIVE_KEYS = ("higher_is_better", "primary", "stderr", "bootstrap")
"""The entries `evaluate` adds to every metric's output, describing its scores."""


@dataclass
class MetricResult:
    """One metric's output (scores.json entry) and its per-sample outcomes."""

    output: dict[str, Any]
    sample_ids: list[str]
    outcomes: list[Outcome]


def bootstrap_stderr(metric: Metric, outcomes: list[Outcome], seed: int = BOOTSTRAP_SEED) -> dict[str, float | None]:
    """Standard error of each headline score over `metric.bootstrap_resamples` resamples.

    Samples (or the clusters that `metric.cluster` names) are drawn with replacement, seeded;
    a resample the aggregate cannot score (e.g. no object mentioned) is left out for that
    score. None when fewer than two resamples gave a value.
    """
    clusters: dict[Any, list[Outcome]] = {}
    for index, outcome in enumerate(outcomes):
        clusters.setdefault(outcome.get(metric.cluster) if metric.cluster else index, []).append(outcome)
    units = list(clusters.values())
    rng = random.Random(seed)
    values: dict[str, list[float]] = {key: [] for key in metric.higher_is_better}
    for _ in range(metric.bootstrap_resamples):
        resample = [outcome for unit in rng.choices(units, k=len(units)) for outcome in unit]
        try:
            scores = metric.aggregate(resample)
        except ValueError:  # ScoringError: nothing scorable in this resample
            continue
        for key in values:
            if isinstance(scores.get(key), (int, float)):
                values[key].append(float(scores[key]))
    result = {}
    for key, draws in values.items():
        if len(draws) < 2:
            result[key] = None
            continue
        mean = sum(draws) / len(draws)
        result[key] = math.sqrt(sum((d - mean) ** 2 for d in draws) / (len(draws) - 1))
    return result


def evaluate(metric_name: str, generations: pa.Table, context: ScoringContext) -> MetricResult:
    """Scores one metric on a run's generations: outcomes, aggregate, directions, stderr."""
    from eval.metrics._rows import run_rows

    metric = METRICS.get(metric_name)
    rows = run_rows(generations)
    outcomes = metric.per_sample(rows, context)
    if len(outcomes) != len(rows):
        raise ValueError(f"metric {metric_name}: per_sample gave {len(outcomes)} outcomes for {len(rows)} rows")
    output = {
        **metric.aggregate(outcomes),
        "higher_is_better": dict(metric.higher_is_better),
        "primary": metric.primary,
        "stderr": bootstrap_stderr(metric, outcomes),
        "bootstrap": {"resamples": metric.bootstrap_resamples, "seed": BOOTSTRAP_SEED,
                      "unit": metric.cluster or "sample"},
    }
    return MetricResult(output, [row["sample_id"] for row, _ in rows], outcomes)


def score_metric(metric_name: str, context: ScoringContext) -> MetricResult:
    """Scores one metric on a run's generations (runs inside a Ray task or in-process)."""
    from pipeline.schema import read_generations

    return evaluate(metric_name, read_generations(context.run_dir), context)


def samples_table(results: dict[str, MetricResult]) -> pa.Table | None:
    """One row per sample: sample_id and `<metric>.<field>` columns; None without outcomes."""
    import pyarrow as pa

    rows: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        for sample_id, outcome in zip(result.sample_ids, result.outcomes):
            row = rows.setdefault(sample_id, {"sample_id": sample_id})
            row.update({f"{name}.{key}": _plain(value) for key, value in outcome.items()})
    if not rows:
        return None
    columns = list(dict.fromkeys(key for row in rows.values() for key in row))
    ordered = [rows[sample_id] for sample_id in sorted(rows)]
    return pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in ordered])


def _plain(value: Any) -> Any:
    """Outcome values as Parquet takes them: mixed-type ids as text, nested values as JSON."""
    if isinstance(value, (dict, tuple)) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
        return json.dumps(value)
    if isinstance(value, list):
        return [str(v) for v in value]
    return value


def read_samples(run_dir: Path) -> pa.Table | None:
    """A run's samples.parquet, or None when its metrics gave no per-sample outcomes."""
    import pyarrow.parquet as pq

    path = Path(run_dir) / SAMPLES_FILE
    return pq.read_table(path) if path.is_file() else None


def score_run(
    context: ScoringContext, metric_names: tuple[str, ...], identity: dict[str, Any]
) -> dict[str, Any]:
    """Scores every metric of a run as parallel Ray tasks; writes scores.json and samples.parquet.

    Args:
        context: the run folder (holding generations/), its benchmark folder, judge and tagger.
        metric_names: names in the METRICS registry.
        identity: run_id, config_hash, model, method, benchmark: copied into the output.
    """
    import pyarrow.parquet as pq
    import ray

    from pipeline.schema import read_generations

    for name in metric_names:
        METRICS.get(name)  # an unknown metric fails here, before any task starts
    task = ray.remote(num_cpus=0.25)(score_metric)
    pending = {name: task.remote(name, context) for name in metric_names}
    generations = read_generations(context.run_dir, columns=["error", "n_generated"])
    errors = generations.column("error").to_pylist()
    results = {name: _scored(name, ref, context) for name, ref in pending.items()}
    scores = {
        **identity,
        "n_samples": generations.num_rows,
        "n_errors": sum(e is not None for e in errors),
        "metrics": {name: result.output for name, result in results.items()},
    }
    run_dir = Path(context.run_dir)
    samples = samples_table(results)
    (run_dir / SAMPLES_FILE).unlink(missing_ok=True)
    if samples is not None:
        pq.write_table(samples, run_dir / SAMPLES_FILE)
    (run_dir / SCORES_FILE).write_text(json.dumps(scores, indent=2, sort_keys=False))
    return scores


def _scored(metric_name: str, ref: Any, context: ScoringContext) -> MetricResult:
    """A scoring task's result. A ScoringError inside the task (e.g. nothing a metric can score)
    comes back as one line naming the run and the metric, not as the task's remote traceback.

    Raises:
        ScoringError: the metric could not score the run.
    """
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, ScoringError):
            raise ScoringError(f"{context.run_dir}: {metric_name}: {error.cause}") from None
        raise


def load_scores(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / SCORES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `halleval run` on this config first")
    return json.loads(path.read_text())
