"""Per-sample vectors of the headline scores and the paired bootstrap that compares two runs.

A score like POPE F1 or CHAIR_i is not a mean over samples, so the bootstrap resamples samples
and recomputes the score from per-sample columns (POPE: predicted yes, label yes; CHAIR:
hallucinated, mentioned, recalled and ground-truth object counts per caption). Both runs are
resampled with the same indices over the samples they share (paired), which cancels the
per-sample difficulty that an unpaired comparison would count as noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Columns = dict[str, np.ndarray]  # column -> [..., n] (a leading resample axis is allowed)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1e-300), np.nan)


def _pope_f1(c: Columns) -> np.ndarray:
    precision = _ratio((c["pred_yes"] * c["label_yes"]).sum(-1), c["pred_yes"].sum(-1))
    recall = _ratio((c["pred_yes"] * c["label_yes"]).sum(-1), c["label_yes"].sum(-1))
    with np.errstate(invalid="ignore"):
        return np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)


# metric -> score -> statistic of the per-sample columns (reduced over the last axis).
STATISTICS: dict[str, dict[str, Callable[[Columns], np.ndarray]]] = {
    "pope": {
        "accuracy": lambda c: (c["pred_yes"] == c["label_yes"]).mean(-1),
        "precision": lambda c: _ratio((c["pred_yes"] * c["label_yes"]).sum(-1), c["pred_yes"].sum(-1)),
        "recall": lambda c: _ratio((c["pred_yes"] * c["label_yes"]).sum(-1), c["label_yes"].sum(-1)),
        "f1": _pope_f1,
        "yes_ratio": lambda c: c["pred_yes"].mean(-1),
    },
    "chair": {
        "chair_s": lambda c: (c["hallucinated"] > 0).mean(-1),
        "chair_i": lambda c: _ratio(c["hallucinated"].sum(-1), c["mentioned"].sum(-1)),
        "recall": lambda c: _ratio(c["recalled"].sum(-1), c["gt"].sum(-1)),
    },
}


def sample_vectors(metric: str, output: dict[str, Any]) -> dict[str, Any] | None:
    """{"keys": [...], "columns": {name: [...]}} from a metric's per-item output, or None when
    the metric has no per-sample statistics here (its scores are compared without a CI)."""
    if metric == "pope":
        items = output["per_item"]
        return {
            "keys": [str(i["question_id"]) for i in items],
            "columns": {"pred_yes": [int(i["pred"] == "yes") for i in items],
                        "label_yes": [int(i["label"] != "no") for i in items]},
        }
    if metric == "chair":
        items = output["per_caption"]
        return {
            "keys": [str(i["image_id"]) for i in items],
            "columns": {
                "hallucinated": [len(i["hallucinated"]) for i in items],
                "mentioned": [len(i["mentioned"]) for i in items],
                "recalled": [len(set(i["mentioned"]) & set(i["gt_objects"])) for i in items],
                "gt": [len(i["gt_objects"]) for i in items],
            },
        }
    return None


def paired_bootstrap(
    metric: str, score: str, old: dict[str, Any], new: dict[str, Any], resamples: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95% CI of new - old for one score, resampling the samples both runs share.

    Returns:
        (low, high), or None when the score has no statistic or the runs share no sample.
    """
    statistic = STATISTICS.get(metric, {}).get(score)
    if statistic is None:
        return None
    old_index = {key: i for i, key in enumerate(old["keys"])}
    pairs = [(old_index[key], i) for i, key in enumerate(new["keys"]) if key in old_index]
    if not pairs:
        return None
    old_rows, new_rows = (np.array(side) for side in zip(*pairs))
    draws = np.random.default_rng(seed).integers(0, len(pairs), size=(resamples, len(pairs)))
    before = statistic({k: np.asarray(v, dtype=float)[old_rows][draws] for k, v in old["columns"].items()})
    after = statistic({k: np.asarray(v, dtype=float)[new_rows][draws] for k, v in new["columns"].items()})
    low, high = np.nanpercentile(after - before, [2.5, 97.5])
    return float(low), float(high)
