"""The interfaces of the scoring side.

A `Metric` scores one benchmark family the way lighteval and lm-evaluation-harness define one:
a per-sample function (each generation row -> its outcome: POPE's prediction, label and
correctness; CHAIR's mentioned and hallucinated objects; a judge's verdict), an aggregate
function (outcomes -> the corpus scores) and `higher_is_better` for each headline score. So
per-sample results (`samples.parquet`), bootstrap standard errors and leaderboards come from
every metric alike (eval.scoring). The file path of a metric (`halleval score ...`, the
reference scorer's own input format) ends in the same aggregate, so both give the same numbers.

`ScoringContext` carries what the per-sample function needs besides the rows (benchmark folder,
run folder, judge, tagger) as plain data, so it can travel to a Ray task. `ScoringError` is an
input that cannot be scored; `METRICS` is the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.registry import Registry

RunRow = tuple[dict[str, Any], dict[str, Any]]
"""A generation row (GENERATION_SCHEMA columns) and its parsed `metadata`."""

Outcome = dict[str, Any]
"""One sample's result under one metric: plain values (str, number, bool, lists of str)."""


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


@dataclass(frozen=True)
class Metric:
    """A registered metric: per-sample function, aggregate function, and directions.

    Register one with `METRICS.register("name")(Metric(...))`. Scoring calls `per_sample` once
    with every row of a run (error rows included, in the run's sample-id order), then
    `aggregate` on the outcomes, and `aggregate` again on bootstrap resamples of them for the
    standard errors. A pure per-item scorer plugs in with `per_row`.

    Attributes:
        name: the registered name.
        description: one line for `halleval list metrics`.
        per_sample: (rows, context) -> one Outcome per row, in order. An error row's outcome
            says how it counts (left out, unanswered, or wrong); `sample_id` is added for you.
        aggregate: outcomes -> the metric's output: headline scores, counts, breakdowns.
        higher_is_better: headline score -> True when higher is better; these scores get a
            standard error and the direction arrows.
        primary: the headline score a leaderboard or a grid plot shows (default: the first).
        cluster: an outcome key whose equal values are resampled together (MME resamples the
            two questions of an image as one unit, as acc+ pairs them); None: each sample.
    """

    name: str
    description: str
    per_sample: Callable[[list[RunRow], ScoringContext], list[Outcome]]
    aggregate: Callable[[list[Outcome]], dict[str, Any]]
    higher_is_better: Mapping[str, bool]
    primary: str = ""
    cluster: str | None = None
    bootstrap_resamples: int = field(default=200)

    def __post_init__(self) -> None:
        if not self.higher_is_better:
            raise ValueError(f"metric {self.name!r}: name at least one headline score in higher_is_better")
        if not self.primary:
            object.__setattr__(self, "primary", next(iter(self.higher_is_better)))
        if self.primary not in self.higher_is_better:
            raise ValueError(f"metric {self.name!r}: primary {self.primary!r} is not in higher_is_better")


def per_row(score: Callable[[dict[str, Any], dict[str, Any]], Outcome]) -> Callable[[list[RunRow], ScoringContext], list[Outcome]]:
    """Lifts a pure (row, metadata) -> Outcome function to a Metric's per_sample."""
    def per_sample(rows: list[RunRow], context: ScoringContext) -> list[Outcome]:
        return [score(row, metadata) for row, metadata in rows]

    return per_sample


METRICS: Registry[Metric] = Registry("metric", "eval.metrics")
