"""The claims report: the paper's saliency findings checked on one run, with bootstrap CIs.

For a CHAIR run that recorded saliency (SGRS always does; greedy, sample and LocoRE with
`method.record_saliency: true`), the object tokens of its captions and whether each is
hallucinated come from `eval.metrics.saliency_bins.read_object_tokens` (CHAIR's tagger and
ground truth). Each finding is a statistic with a 95% percentile bootstrap interval that
resamples captions (tokens of one caption are not independent), and a verdict:

- `saliency_gap` (Finding 2, "hallucinated tokens have low saliency"): mean saliency of
  hallucinated minus correct object tokens. Holds when the interval lies below 0.
- `position_matched_gap`: the same gap within each generated-token position, averaged with the
  hallucinated tokens' counts as weights, so a method or model that hallucinates late in the
  caption (where saliency differs anyway) does not make the gap. Holds when below 0.
- `rate_by_bin`: hallucination rate per quantile bin of object-token saliency, and the lowest
  bin's rate minus the highest bin's (`low_minus_high`). Holds when above 0. Also the rate among
  tokens with raw saliency < 0.1, which the paper puts above 70%.
- `preceding_gap` (Finding 1, "saliency collapse precedes hallucination"): mean saliency of the
  `window` generated tokens before the object token, hallucinated minus correct, raw and
  position-matched. Holds when below 0.

Verdicts: "holds", "does not hold" (the interval contains 0), "reversed" (the interval excludes
0 on the other side) or "too few tokens" (fewer than MIN_TOKENS hallucinated or correct
tokens). The key span of the run's saliency (`method.key_span`, post_image or outputs) is read
from its config.yaml and printed with every report: the findings can differ between spans.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from eval.api import ScoringError
from eval.metrics.saliency_bins import ObjectToken, bin_edges, bin_index, read_object_tokens

BOOTSTRAP_SAMPLES = 2000
MIN_TOKENS = 5
PRECEDING_WINDOW = 3
PAPER_THRESHOLD = 0.1  # "hallucination rate > 70% when saliency < 0.1"


@dataclass(frozen=True)
class _Sums:
    """Per-caption sums and counts of one statistic, split by hallucinated (h) and correct (c)."""

    h_sum: np.ndarray
    h_n: np.ndarray
    c_sum: np.ndarray
    c_n: np.ndarray


def _sums(tokens: list[tuple[ObjectToken, float]], n_captions: int, strata: list[int]) -> _Sums:
    """[caption, stratum] sums of the given per-token values."""
    shape = (n_captions, max(len(strata), 1))
    sums = _Sums(*(np.zeros(shape) for _ in range(4)))
    index = {stratum: i for i, stratum in enumerate(strata)}
    for token, value in tokens:
        column = index.get(token.position, 0) if strata else 0
        if token.hallucinated:
            sums.h_sum[token.caption, column] += value
            sums.h_n[token.caption, column] += 1
        else:
            sums.c_sum[token.caption, column] += value
            sums.c_n[token.caption, column] += 1
    return sums


def _gap(sums: _Sums, weights: np.ndarray) -> np.ndarray:
    """Mean(h) - mean(c) per stratum, averaged with h counts; rows of `weights` are resamples."""
    h_sum, h_n, c_sum, c_n = (weights @ part for part in (sums.h_sum, sums.h_n, sums.c_sum, sums.c_n))
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = h_sum / h_n - c_sum / c_n
        usable = (h_n > 0) & (c_n > 0)
        total = np.where(usable, h_n, 0).sum(axis=1)
        return np.where(total > 0, np.where(usable, gap * h_n, 0).sum(axis=1) / total, np.nan)


def _interval(point: float, samples: np.ndarray) -> dict[str, Any]:
    finite = samples[np.isfinite(samples)]
    if not np.isfinite(point) or finite.size == 0:
        return {"value": None, "ci_low": None, "ci_high": None}
    low, high = np.percentile(finite, [2.5, 97.5])
    return {"value": float(point), "ci_low": float(low), "ci_high": float(high)}


def _verdict(estimate: dict[str, Any], n_h: int, n_c: int, expected_sign: int) -> str:
    if n_h < MIN_TOKENS or n_c < MIN_TOKENS or estimate["value"] is None:
        return "too few tokens"
    low, high = estimate["ci_low"], estimate["ci_high"]
    if (expected_sign < 0 and high < 0) or (expected_sign > 0 and low > 0):
        return "holds"
    if (expected_sign < 0 and low > 0) or (expected_sign > 0 and high < 0):
        return "reversed"
    return "does not hold"


def _preceding(token: ObjectToken, window: int) -> float | None:
    """Mean saliency of the `window` generated tokens before the token (None at the start)."""
    before = [s for s in token.saliency[max(0, token.position - window):token.position] if s is not None]
    return sum(before) / len(before) if before else None


def claims(run_dir: str | Path, annotations: str | Path, tagger: str = "auto", seed: int = 0,
           window: int = PRECEDING_WINDOW, samples: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    """Checks the paper's saliency findings on one run (see the module doc).

    Args:
        run_dir: the run folder (generations/ with saliency, config.yaml).
        annotations: the COCO annotations folder of its benchmark.
        tagger: CHAIR's POS tagger.
        seed: seed of the bootstrap resamples.
        window: tokens before an object token that Finding 1 averages.
        samples: bootstrap resamples.

    Raises:
        ScoringError: the run recorded no saliency.
    """
    found = read_object_tokens(run_dir, annotations, tagger)
    if not found.tokens:
        raise ScoringError(
            f"{run_dir}: no object token with saliency; run SGRS, or set method.record_saliency: true"
        )
    tokens = found.tokens
    n_h = sum(token.hallucinated for token in tokens)
    n_c = len(tokens) - n_h
    rng = np.random.default_rng(seed)
    n = found.n_captions
    weights = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1 / n), size=samples)])
    positions = sorted({token.position for token in tokens})

    def estimate(values: list[tuple[ObjectToken, float]], strata: list[int], sign: int) -> dict[str, Any]:
        gaps = _gap(_sums(values, n, strata), weights)
        result = _interval(gaps[0], gaps[1:])
        hallucinated = sum(token.hallucinated for token, _ in values)
        result["verdict"] = _verdict(result, hallucinated, len(values) - hallucinated, sign)
        return result

    own = [(token, token.value) for token in tokens]
    before = [(token, value) for token in tokens if (value := _preceding(token, window)) is not None]
    mean = {flag: float(np.mean([t.value for t in tokens if t.hallucinated == flag] or [np.nan])) for flag in (True, False)}
    return {
        "run_dir": str(run_dir),
        "key_span": key_span(Path(run_dir)),
        "n_captions": n,
        "n_object_tokens": len(tokens),
        "n_hallucinated": n_h,
        "n_correct": n_c,
        "mean_saliency_hallucinated": None if np.isnan(mean[True]) else mean[True],
        "mean_saliency_correct": None if np.isnan(mean[False]) else mean[False],
        "saliency_gap": estimate(own, [], -1),
        "position_matched_gap": estimate(own, positions, -1),
        "rate_by_bin": _rate_by_bin(tokens, n, weights),
        "preceding_window": window,
        "preceding_gap": estimate(before, [], -1),
        "preceding_position_matched_gap": estimate(before, positions, -1),
        "bootstrap": {"samples": samples, "seed": seed, "unit": "caption"},
        "n_errors": found.n_errors, "n_without_saliency": found.n_without_saliency, "n_unaligned": found.n_unaligned,
    }


def _rate_by_bin(tokens: list[ObjectToken], n_captions: int, weights: np.ndarray) -> dict[str, Any]:
    """Hallucination rate per quantile bin with CIs; lowest minus highest bin; the paper's < 0.1 rate."""
    values = [token.value for token in tokens]
    edges, record = bin_edges(values, "quantile", None)
    per_caption = np.zeros((n_captions, len(edges) - 1, 2))
    for token in tokens:  # quantile edges span every value, so each token has a bin
        per_caption[token.caption, bin_index(edges, token.value)] += (1, token.hallucinated)
    totals = np.einsum("rc,cbk->rbk", weights, per_caption)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = totals[..., 1] / totals[..., 0]
    bins = []
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        bins.append({"lo": lo, "hi": hi, "tokens": int(per_caption[:, i, 0].sum()),
                     "hallucinated": int(per_caption[:, i, 1].sum()), **_interval(rates[0, i], rates[1:, i])})
    low_minus_high = _interval(rates[0, 0] - rates[0, -1], rates[1:, 0] - rates[1:, -1])
    n_h = sum(token.hallucinated for token in tokens)
    low_minus_high["verdict"] = _verdict(low_minus_high, n_h, len(tokens) - n_h, +1)
    below = [token.hallucinated for token in tokens if token.value < PAPER_THRESHOLD]
    return {
        "binning": record, "bins": bins, "low_minus_high": low_minus_high,
        "below_paper_threshold": {"threshold": PAPER_THRESHOLD, "tokens": len(below),
                                  "rate": sum(below) / len(below) if below else None, "paper_claim": "> 0.7"},
    }


def key_span(run_dir: Path) -> str | None:
    """The run's `method.key_span` from its config.yaml (None when the file is missing)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    return (yaml.safe_load(path.read_text()).get("method") or {}).get("key_span", "post_image")


def _fmt_interval(estimate: dict[str, Any]) -> str:
    if estimate["value"] is None:
        return "n/a"
    return f"{estimate['value']:+.4f} [{estimate['ci_low']:+.4f}, {estimate['ci_high']:+.4f}]"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


CLAIM_COLUMNS = ("finding", "statistic", "estimate [95% CI]", "verdict")
BIN_COLUMNS = ("saliency bin (quantile)", "tokens", "hallucinated", "rate [95% CI]")


def claim_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per finding: what it claims, the statistic, its estimate with CI, the verdict."""
    rate = result["rate_by_bin"]
    findings = (
        ("Finding 2: hallucinated tokens have lower saliency",
         f"mean S hallucinated − correct ({_num(result['mean_saliency_hallucinated'])} vs "
         f"{_num(result['mean_saliency_correct'])})", result["saliency_gap"]),
        ("the same, matched for token position", "per-position gap, weighted by hallucinated tokens",
         result["position_matched_gap"]),
        ("hallucination falls as saliency rises", "rate in the lowest minus the highest quantile bin",
         rate["low_minus_high"]),
        ("Finding 1: saliency collapses before a hallucination",
         f"mean S of the {result['preceding_window']} tokens before, hallucinated − correct", result["preceding_gap"]),
        ("Finding 1, matched for token position", "per-position gap", result["preceding_position_matched_gap"]),
    )
    return [{"finding": finding, "statistic": statistic, "estimate [95% CI]": _fmt_interval(estimate),
             "verdict": estimate["verdict"]} for finding, statistic, estimate in findings]


def bin_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The hallucination rate per quantile bin of object-token saliency, with CIs."""
    return [{
        "saliency bin (quantile)": f"[{b['lo']:.4g}, {b['hi']:.4g})", "tokens": b["tokens"],
        "hallucinated": b["hallucinated"],
        "rate [95% CI]": "n/a" if b["value"] is None else f"{b['value']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}]",
    } for b in result["rate_by_bin"]["bins"]]


def summary_line(result: dict[str, Any]) -> str:
    """Key span, counts and the bootstrap used, in one sentence."""
    return (f"Key span `{result['key_span']}`; {result['n_captions']} captions, {result['n_object_tokens']} object "
            f"tokens ({result['n_hallucinated']} hallucinated, {result['n_correct']} correct); 95% bootstrap CIs "
            f"over captions ({result['bootstrap']['samples']} resamples).")


def threshold_line(result: dict[str, Any]) -> str:
    """The paper's "> 70% when S < 0.1" against this run."""
    below = result["rate_by_bin"]["below_paper_threshold"]
    found = (f"{below['rate']:.1%} of {below['tokens']} tokens" if below["rate"] is not None
             else f"no token has S < {below['threshold']}")
    return f"Paper: hallucination rate > 70% when S < {below['threshold']}. Here: {found}."


def render_claims(result: dict[str, Any]) -> list[str]:
    """The claims report as Markdown lines."""
    from eval.html.page import markdown_table

    return ([summary_line(result), ""] + markdown_table(claim_rows(result), CLAIM_COLUMNS)
            + ["", threshold_line(result), ""] + markdown_table(bin_rows(result), BIN_COLUMNS))
