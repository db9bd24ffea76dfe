"""The interfaces of the scoring side.

A `Metric` scores one benchmark family. It has a file path (the reference scorer's own input
format, used by `halleval score ...`) and a run path (a run's generations Parquet, used after a
run); both end in the same `score_*` function so they give the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from pipeline.registry import Registry


class ScoringError(ValueError):
    """An input that cannot be scored; the message names the file or id and the fix."""


class Metric(Protocol):
    """A registered metric. `higher_is_better` names each headline score's direction."""

    name: str
    higher_is_better: dict[str, bool]

    def score_run(self, generations: pa.Table, benchmark_root: Path) -> dict[str, Any]:
        """Scores a run's generations (GENERATION_SCHEMA rows) against the benchmark folder.

        Rows with `error` set are not scored; they are counted under `n_errors`.
        """
        ...


METRICS: Registry[Metric] = Registry("metric", "eval.metrics")
