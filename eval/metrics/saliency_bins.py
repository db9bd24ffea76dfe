"""Saliency vs hallucination (the paper's Figure 2): how often object tokens are hallucinated
as a function of their saliency.

For each generated caption of a run (rows without error and with `saliency`), CHAIR finds the
object words and which are hallucinated (eval.metrics.chair, same tagger and ground truth).
Each object word's character span in `output_text` is matched to the generated tokens whose
character range [token_offsets[i], token_offsets[i+1]) overlaps it; those are its object
tokens. Per saliency bin [lo, hi) (the last bin includes hi): `tokens` = object tokens whose
saliency falls in it, `hallucinated` = those belonging to a hallucinated object, `rate` =
hallucinated / tokens (None for an empty bin). Also the mean saliency of correct and of
hallucinated object tokens. A PNG of rate per bin is written to the run folder.

Binning (recorded under `binning` in the result):

- `quantile` (default): edges at the quantiles of the run's object-token saliencies (5 bins of
  about equal token counts; tied edges merge). Raw saliency is the mean of an L2-normalised row
  over the key span, so it is at most 1/sqrt(span length) and structurally small: fixed 0.1-wide
  bins put nearly every token in the first bin.
- `fixed`: the given edges (default 0, 0.1, ..., 1) on the raw values.
- `normalised`: the paper's fixed 0.1-wide bins on saliency divided by the largest object-token
  saliency of the run, so values span [0, 1] whatever the span length; the divisor is recorded.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.api import ScoringError
from eval.metrics.chair import caption_objects, ground_truth
from pipeline.schema import read_generations

DEFAULT_BINS = tuple(round(0.1 * i, 1) for i in range(11))
PLOT_NAME = "saliency_bins.png"
_QUOTES = {"``": '"', "''": '"'}  # word_tokenize rewrites double quotes


def token_char_spans(text: str, tokens: list[str]) -> list[tuple[int, int]] | None:
    """Character spans of word_tokenize tokens in `text`, or None if they cannot be aligned."""
    spans, position = [], 0
    for token in tokens:
        start = text.find(token, position)
        if start < 0 and token in _QUOTES:
            token = _QUOTES[token]
            start = text.find(token, position)
        if start < 0:
            return None
        spans.append((start, start + len(token)))
        position = start + len(token)
    return spans


def object_tokens(text: str, offsets: list[int], truth: list[str], tagger: str) -> tuple[dict[int, bool], bool]:
    """Maps generated-token index → hallucinated? for every token inside a CHAIR object word.

    Returns the map and whether the caption could be aligned (lower-casing that changes the
    length, or a token not found, makes it unalignable).
    """
    lowered = text.lower()
    found = caption_objects(text, tagger)
    spans = token_char_spans(lowered, found.tokens)
    if spans is None or len(lowered) != len(text):
        return {}, False
    ends = list(offsets[1:]) + [len(text)]
    result: dict[int, bool] = {}
    for name, (first, last) in zip(found.objects, found.token_spans):
        start, end = spans[first][0], spans[last - 1][1]
        hallucinated = name not in truth
        # tokens overlapping [start, end): offsets are sorted, so bisect bounds the scan
        for i in range(max(bisect.bisect_right(offsets, start) - 1, 0), bisect.bisect_left(offsets, end)):
            if offsets[i] < end and ends[i] > start:
                result[i] = result.get(i, False) or hallucinated
    return result, True


BINNINGS = ("quantile", "fixed", "normalised")
DEFAULT_QUANTILE_BINS = 5


@dataclass(frozen=True)
class ObjectToken:
    """One generated token inside a CHAIR object word of a caption that recorded saliency.

    Attributes:
        caption: index of its caption among the run's scored captions.
        position: its index among the caption's generated tokens.
        saliency: the caption's saliency list (the token's value is `saliency[position]`).
        hallucinated: whether its object is absent from the image's ground truth.
    """

    caption: int
    position: int
    saliency: tuple[float, ...]
    hallucinated: bool

    @property
    def value(self) -> float:
        return self.saliency[self.position]


@dataclass
class ObjectTokens:
    """The object tokens of a run and the rows that gave none."""

    tokens: list[ObjectToken]
    n_captions: int = 0
    n_errors: int = 0
    n_without_saliency: int = 0
    n_unaligned: int = 0


def read_object_tokens(run_dir: str | Path, annotations: str | Path, tagger: str = "auto") -> ObjectTokens:
    """Finds every object token of a run's captions and whether it is hallucinated (module doc)."""
    table = read_generations(run_dir, columns=["metadata", "output_text", "tokens", "token_offsets",
                                               "saliency", "error"])
    truth = ground_truth(annotations, tagger)
    found = ObjectTokens(tokens=[])
    for row in table.to_pylist():
        if row["error"] is not None:
            found.n_errors += 1
            continue
        if row["saliency"] is None or row["token_offsets"] is None:
            found.n_without_saliency += 1
            continue
        image_id = json.loads(row["metadata"] or "{}").get("image_id")
        marks, aligned = object_tokens(row["output_text"] or "", row["token_offsets"], truth.get(image_id, []), tagger)
        found.n_unaligned += not aligned
        saliency = tuple(row["saliency"])
        for index, hallucinated in sorted(marks.items()):
            if saliency[index] is not None:
                found.tokens.append(ObjectToken(found.n_captions, index, saliency, hallucinated))
        found.n_captions += 1
    return found


def bin_edges(values: list[float], binning: str, bins: tuple[float, ...] | None,
              n_quantiles: int = DEFAULT_QUANTILE_BINS) -> tuple[tuple[float, ...], dict[str, Any]]:
    """The bin edges of `binning` for these saliency values, and the record of how they were made.

    Returns:
        (edges on the values as given, the `binning` record: mode, edges as shown, divisor).

    Raises:
        ScoringError: an unknown binning, quantile binning given explicit edges, or edges that
            are not increasing.
    """
    if binning not in BINNINGS:
        raise ScoringError(f"unknown saliency binning {binning!r}; use one of {', '.join(BINNINGS)}")
    if binning == "quantile":
        if bins is not None:
            raise ScoringError("quantile binning computes its own edges; pass bins only with binning fixed or normalised")
        ordered = sorted(values) or [0.0]
        cuts = [ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1) / n_quantiles))] for q in range(n_quantiles + 1)]
        edges = tuple(dict.fromkeys(cuts))
        edges = edges if len(edges) > 1 else (edges[0], edges[0] + 1e-12)
        return edges, {"mode": "quantile", "quantiles": n_quantiles, "edges": list(edges), "divisor": None}
    shown = tuple(bins) if bins is not None else DEFAULT_BINS
    if len(shown) < 2 or any(b >= c for b, c in zip(shown, shown[1:])):
        raise ScoringError(f"bins must be at least two increasing edges, got {list(shown)}")
    divisor = (max(values) if values and max(values) > 0 else 1.0) if binning == "normalised" else 1.0
    edges = tuple(edge * divisor for edge in shown)
    return edges, {"mode": binning, "edges": list(shown), "divisor": divisor if binning == "normalised" else None}


def bin_index(edges: tuple[float, ...], value: float) -> int | None:
    """The bin [lo, hi) of `value` (the last bin is closed), None outside every bin."""
    slot = bisect.bisect_right(edges, value) - 1
    if slot == len(edges) - 1 and value == edges[-1]:
        slot -= 1
    return slot if 0 <= slot < len(edges) - 1 else None


def bin_counts(edges: tuple[float, ...], marked: list[tuple[float, bool]]) -> tuple[list[list[int]], int]:
    """[tokens, hallucinated] per bin [lo, hi) (the last closed) and the count outside every bin."""
    counts = [[0, 0] for _ in edges[:-1]]
    out_of_range = 0
    for value, hallucinated in marked:
        slot = bin_index(edges, value)
        if slot is None:
            out_of_range += 1
            continue
        counts[slot][0] += 1
        counts[slot][1] += hallucinated
    return counts, out_of_range


def score_saliency_bins(run_dir: str | Path, annotations: str | Path, bins: tuple[float, ...] | None = None,
                        tagger: str = "auto", plot: bool = True, binning: str = "quantile") -> dict[str, Any]:
    """Bins object-token saliency of a run against CHAIR hallucinations (see the module doc).

    Args:
        run_dir: the run folder (generations/ with saliency).
        annotations: the COCO annotations folder of the benchmark.
        bins: edges for `fixed` (raw values) or `normalised` (values over the run's maximum).
        tagger: CHAIR's POS tagger.
        plot: write saliency_bins.png into the run folder.
        binning: quantile (default), fixed or normalised.
    """
    found = read_object_tokens(run_dir, annotations, tagger)
    marked = [(token.value, token.hallucinated) for token in found.tokens]
    edges, record = bin_edges([value for value, _ in marked], binning, bins)
    counts, n_out_of_range = bin_counts(edges, marked)
    shown = record["edges"] if binning != "quantile" else edges
    correct = [value for value, hallucinated in marked if not hallucinated]
    wrong = [value for value, hallucinated in marked if hallucinated]
    result = {
        "bins": [{"lo": lo, "hi": hi, "tokens": n, "hallucinated": h, "rate": h / n if n else None}
                 for lo, hi, (n, h) in zip(shown, shown[1:], counts)],
        "binning": record,
        "mean_saliency_correct": sum(correct) / len(correct) if correct else None,
        "mean_saliency_hallucinated": sum(wrong) / len(wrong) if wrong else None,
        "n_object_tokens": len(marked),
        "n_errors": found.n_errors, "n_without_saliency": found.n_without_saliency,
        "n_unaligned": found.n_unaligned, "n_out_of_range": n_out_of_range,
    }
    if plot:
        result["plot"] = str(plot_rates(result["bins"], Path(run_dir) / PLOT_NAME))
    return result


def bin_label(bin_row: dict[str, Any]) -> str:
    """"lo–hi" with 3 significant digits (quantile edges are long floats)."""
    return f"{bin_row['lo']:.3g}–{bin_row['hi']:.3g}"


def plot_rates(bins: list[dict[str, Any]], path: Path) -> Path:
    """Writes a bar chart of hallucination rate per saliency bin (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.bar([bin_label(b) for b in bins], [b["rate"] or 0.0 for b in bins], color="#c0504d")
    axes.set_xlabel("saliency of the object token")
    axes.set_ylabel("hallucination rate")
    axes.set_ylim(0, 1)
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
