"""The suite file of `halleval nightly`: a grid (base + axes, usually model x method x
benchmark) plus how far each score may move before the night fails.

```yaml
name: nightly
base: {...}
axes: {model: [...], method.name: [greedy, sgrs], benchmark: [...]}
tolerances: {pope.f1: 0.02, chair.chair_s: 0.03}   # absolute, on the 0-1 scale
default_tolerance: 0.01
```
"""

from __future__ import annotations

from pydantic import Field, field_validator

from eval.api import METRICS
from jobs.grid_config import GridConfig


class SuiteConfig(GridConfig):
    """A nightly suite: a grid plus regression tolerances and bootstrap settings."""

    tolerances: dict[str, float] = Field(
        default_factory=dict, description="'metric.score' -> largest allowed worsening (absolute)."
    )
    default_tolerance: float = Field(0.01, ge=0, description="Tolerance of the scores not named in tolerances.")
    resamples: int = Field(1000, ge=100, description="Bootstrap resamples for the 95% CI.")
    seed: int = Field(0, description="Seed of the bootstrap.")

    @field_validator("tolerances")
    @classmethod
    def _known_scores(cls, tolerances: dict[str, float]) -> dict[str, float]:
        for key, value in tolerances.items():
            metric, _, score = key.partition(".")
            if metric not in METRICS:
                raise ValueError(f"'{key}': {METRICS.unknown_message(metric)}")
            directions = METRICS.get(metric).higher_is_better
            if score not in directions:
                raise ValueError(f"unknown score '{key}'; {metric} has {', '.join(sorted(directions))}")
            if value < 0:
                raise ValueError(f"tolerance of '{key}' must be >= 0, got {value}")
        return tolerances

    def tolerance(self, metric: str, score: str) -> float:
        return self.tolerances.get(f"{metric}.{score}", self.default_tolerance)
