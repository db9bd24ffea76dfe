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
"""

from __future__ import annotations

import bisect
import json
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


def score_saliency_bins(run_dir: str | Path, annotations: str | Path, bins: tuple[float, ...] = DEFAULT_BINS,
                        tagger: str = "auto", plot: bool = True) -> dict[str, Any]:
    """Bins object-token saliency of a run against CHAIR hallucinations (see the module doc)."""
    if len(bins) < 2 or any(b >= c for b, c in zip(bins, bins[1:])):
        raise ScoringError(f"bins must be at least two increasing edges, got {list(bins)}")
    table = read_generations(run_dir, columns=["metadata", "output_text", "tokens", "token_offsets",
                                               "saliency", "error"])
    truth = ground_truth(annotations, tagger)
    counts = [[0, 0] for _ in bins[:-1]]
    saliency_sum = {False: 0.0, True: 0.0}
    saliency_n = {False: 0, True: 0}
    n_errors = n_without_saliency = n_unaligned = n_out_of_range = 0
    for row in table.to_pylist():
        if row["error"] is not None:
            n_errors += 1
            continue
        if row["saliency"] is None or row["token_offsets"] is None:
            n_without_saliency += 1
            continue
        image_id = json.loads(row["metadata"] or "{}").get("image_id")
        marks, aligned = object_tokens(row["output_text"] or "", row["token_offsets"], truth.get(image_id, []), tagger)
        n_unaligned += not aligned
        for index, hallucinated in marks.items():
            value = row["saliency"][index]
            saliency_sum[hallucinated] += value
            saliency_n[hallucinated] += 1
            slot = bisect.bisect_right(bins, value) - 1
            if slot == len(bins) - 1 and value == bins[-1]:
                slot -= 1  # the last bin is closed
            if not 0 <= slot < len(counts):
                n_out_of_range += 1
                continue
            counts[slot][0] += 1
            counts[slot][1] += hallucinated
    result = {
        "bins": [{"lo": lo, "hi": hi, "tokens": n, "hallucinated": h, "rate": h / n if n else None}
                 for lo, hi, (n, h) in zip(bins, bins[1:], counts)],
        "mean_saliency_correct": saliency_sum[False] / saliency_n[False] if saliency_n[False] else None,
        "mean_saliency_hallucinated": saliency_sum[True] / saliency_n[True] if saliency_n[True] else None,
        "n_object_tokens": saliency_n[False] + saliency_n[True],
        "n_errors": n_errors, "n_without_saliency": n_without_saliency,
        "n_unaligned": n_unaligned, "n_out_of_range": n_out_of_range,
    }
    if plot:
        result["plot"] = str(plot_rates(result["bins"], Path(run_dir) / PLOT_NAME))
    return result


def plot_rates(bins: list[dict[str, Any]], path: Path) -> Path:
    """Writes a bar chart of hallucination rate per saliency bin (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.bar([f"{b['lo']:g}–{b['hi']:g}" for b in bins], [b["rate"] or 0.0 for b in bins], color="#c0504d")
    axes.set_xlabel("saliency of the object token")
    axes.set_ylabel("hallucination rate")
    axes.set_ylim(0, 1)
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
