"""The interfaces of the scoring side.

A `Metric` scores one benchmark family. It has a file path (the reference scorer's own input
format, used by `halleval score ...`) and a run path (`score_run(generations, context)` on a
run's generations Parquet, used after a run); both end in the same `score_*` function so they
give the same numbers. `ScoringContext` carries what the run path needs besides the rows
(benchmark folder, run folder, judge, tagger) as plain data, so it can travel to a Ray task.
`ScoringError` is an input that cannot be scored; `METRICS` is the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from pipeline.registry import Registry


class ScoringError(ValueError):
    """An input that cannot be scored; the message names the file or id and the fix."""


@dataclass(frozen=True)
class ScoringContext:
    """What a metric may need besides a run's rows; plain data, so it travels to Ray tasks.

    Attributes:
        benchmark_root: the benchmark folder the run was generated from.
        run_dir: the run folder; metrics keep their own files there (e.g. the judge cache).
        judge: judge spec for open-ended answers (`exact`, `openai:MODEL[@URL]`, `hf:PATH`,
            `replay:FILE`).
        tagger: CHAIR's POS tagger (see docs/metrics.md).
    """

    benchmark_root: Path
    run_dir: Path
    judge: str = "exact"
    tagger: str = "auto"


class Metric(Protocol):
    """A registered metric. `higher_is_better` names each headline score's direction."""

    name: str
    higher_is_better: dict[str, bool]

    def score_run(self, generations: pa.Table, context: ScoringContext) -> dict[str, Any]:
        """Scores a run's generations (GENERATION_SCHEMA rows) against the benchmark folder.

        Rows with `error` set are never dropped silently: each metric counts them under
        `n_errors` and says how it treats them (CHAIR and video QA leave them out, POPE reports
        them as unanswered, MME scores them as wrong answers).
        """
        ...


METRICS: Registry[Metric] = Registry("metric", "eval.metrics")
