"""Video text generation (Video-ChatGPT's benchmark) on its 5 criteria, judged by an LLM judge.

Reference: mbzuai-oryx/Video-ChatGPT `quantitative_evaluation/evaluate_benchmark_{1_correctness,
2_detailed_orientation,3_context,4_temporal,5_consistency}.py`. Each script reads one prediction
file (a JSON list of `{video_name, Q, A, pred}`, or `{video_name, Q1, Q2, A, pred1, pred2}` for
consistency), keys its items `<video_name>_<n>` (n counts that video's earlier items), asks the
judge once per item and prints Σ int(score) / judged. Which file feeds which criterion is the
benchmark's: generic_qa predictions → correctness, detail orientation, contextual
understanding; temporal_qa → temporal understanding; consistency_qa → consistency.

The consistency prompt gets Q1 and Q2 as Video-ChatGPT's script sends them; Video-LLaVA's copy
(`videollava/eval/video/eval_benchmark_5_consistency.py`, otherwise identical) sends Q1 as both
questions, and `reference="video_llava"` reproduces that (`halleval score videogen
--reference video_llava`); runs use Video-ChatGPT's.

Unjudged items (failed after the retries) are reported and left out of the average (the
reference loops until every item is judged). In a run, error rows are counted in `n_errors`
and not judged; a consistency item with an error in either answer is left out whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eval.api import METRICS, Metric, RunRow, ScoringContext, ScoringError
from eval.io import read_records
from eval.judges import Judge
from eval.metrics.videoqa import judge_items, reply_score, unjudged_list, video_chatgpt_keys

CRITERIA = ("correctness", "detail", "context", "temporal", "consistency")
"""The 5 video text-generation criteria (Video-ChatGPT's benchmark), in its order."""

SUBSET_CRITERIA = {
    "generic": ("correctness", "detail", "context"),
    "temporal": ("temporal",),
    "consistency": ("consistency",),
}
"""The criteria each of the benchmark's question files is judged on."""
CRITERION_SUBSET = {criterion: subset for subset, criteria in SUBSET_CRITERIA.items() for criterion in criteria}

_SINGLE_KEYS = ("video_name", "Q", "A", "pred")
_PAIR_KEYS = ("video_name", "Q1", "Q2", "A", "pred1", "pred2")


REFERENCES = ("video_chatgpt", "video_llava")
"""Whose consistency prompt to send: Video-ChatGPT's (Q1 and Q2) or Video-LLaVA's copy (Q1 twice)."""


def to_judge_item(item_id: str, record: dict[str, Any], reference: str = "video_chatgpt") -> dict[str, Any]:
    """The judge's fields for one prediction record: question/answer/pred, or the consistency pair.

    With `reference="video_llava"` the consistency pair gets Q1 as both questions, as Video-LLaVA's
    eval_benchmark_5_consistency.py sends it, and its id gains "@q1q1" so that the judge cache
    never serves one prompt's reply for the other.
    """
    if "pred1" not in record:
        return {"id": item_id, "question": record["Q"], "answer": record["A"], "pred": record["pred"]}
    if reference not in REFERENCES:
        raise ScoringError(f"unknown reference {reference!r}; use {' or '.join(REFERENCES)}")
    quirk = reference == "video_llava"
    return {"id": f"{item_id}@q1q1" if quirk else item_id, "question1": record["Q1"],
            "question2": record["Q1"] if quirk else record["Q2"], "answer": record["A"],
            "pred1": record["pred1"], "pred2": record["pred2"]}  # fmt: skip


def read_textgen(path: str | Path, reference: str = "video_chatgpt") -> tuple[list[dict[str, Any]], str | None]:
    """Reads a Video-ChatGPT prediction file (or halleval's export) as judge items.

    `reference` picks the consistency prompt's questions (see `to_judge_item`).

    Returns:
        (items keyed `<video_name>_<n>` as the reference keys them, the file's subset: the
        `subset` its records carry (halleval's export), else "consistency" for pred1/pred2
        records, else None)

    Raises:
        ScoringError: a record in neither layout, mixed layouts, or mixed subsets.
    """
    records = read_records(path)
    if not records:
        raise ScoringError(f"{path}: no predictions")
    paired = all(key in records[0] for key in _PAIR_KEYS)
    keys = _PAIR_KEYS if paired else _SINGLE_KEYS
    for index, record in enumerate(records):
        if not all(key in record for key in keys):
            raise ScoringError(
                f"{path}: record {index + 1} has keys {sorted(record)}; expected {{{', '.join(_SINGLE_KEYS)}}} "
                f"or, for consistency, {{{', '.join(_PAIR_KEYS)}}} in every record"
            )
    if all(key in records[0] for key in ("id", "question", "answer")):
        raise ScoringError(f"{path}: a video-QA prediction file (id, question, answer); score it with "
                           "`halleval score videoqa`")
    subsets = {record["subset"] for record in records if "subset" in record}
    if len(subsets) > 1:
        raise ScoringError(
            f"{path}: records of several subsets ({', '.join(sorted(subsets))}); score one file per subset"
        )
    subset = subsets.pop() if subsets else ("consistency" if paired else None)
    if subset is not None and subset not in SUBSET_CRITERIA:
        raise ScoringError(f"{path}: unknown subset {subset!r}; expected one of {', '.join(SUBSET_CRITERIA)}")
    if (subset == "consistency") != paired:
        raise ScoringError(f"{path}: subset {subset!r} does not match its records' keys")
    keys = video_chatgpt_keys(records)
    items = [to_judge_item(key, record, reference) for key, record in zip(keys, records, strict=True)]
    return items, subset


def criterion_result(scores: list[int], unjudged: dict[Any, str]) -> dict[str, Any]:
    """One criterion's entry: the references' Σ int(score) / judged items, with the unjudged."""
    return {"average_score": sum(scores) / len(scores) if scores else None, "n": len(scores),
            "n_unjudged": len(unjudged), "unjudged": unjudged_list(unjudged)}


def score_textgen(
    batches: list[tuple[tuple[str, ...], list[dict[str, Any]]]], judge_spec: str, cache: Path,
    backoff_s: float = 1.0,
) -> dict[str, Any]:
    """Judges each batch of items on its criteria; the function both the CLI and runs go through.

    Args:
        batches: (criteria, items) pairs, e.g. the generic file's items on correctness, detail
            and context; a criterion may appear in one batch only.
        judge_spec: the judge, e.g. `openai:gpt-3.5-turbo` or `replay:FILE`.
        cache: the judged-reply cache (JSONL).
        backoff_s: the first retry's wait after a failed judgement.

    Returns:
        {"judge", "criteria": {criterion: {average_score, n, n_unjudged, unjudged}}} plus each
        criterion's average_score at the top level.
    """
    result: dict[str, Any] = {"judge": judge_spec, "criteria": {}}
    for criterion, (judge, judged, unjudged) in judge_batches(batches, judge_spec, cache, backoff_s):
        result["judge"] = judge.spec
        result["criteria"][criterion] = criterion_result([reply_score(j) for j in judged.values()], unjudged)
        result[criterion] = result["criteria"][criterion]["average_score"]
    return result


def judge_batches(
    batches: list[tuple[tuple[str, ...], list[dict[str, Any]]]], judge_spec: str, cache: Path, backoff_s: float = 1.0,
) -> Iterator[tuple[str, tuple[Judge, dict[Any, dict[str, Any]], dict[Any, str]]]]:
    """(criterion, `judge_items`' result) for each criterion of each batch, checked first."""
    named = [criterion for criteria, _ in batches for criterion in criteria]
    if unknown := [c for c in named if c not in CRITERIA]:
        raise ScoringError(f"unknown criterion {unknown[0]!r}; use {', '.join(CRITERIA)}")
    if len(set(named)) < len(named):
        raise ScoringError("a criterion is given twice; score each criterion from one prediction file")
    for criteria, items in batches:
        for criterion in criteria:
            if criterion == "consistency" and items and "pred1" not in items[0]:
                raise ScoringError("consistency needs the consistency file's predictions (Q1, Q2, pred1, pred2)")
            if criterion != "consistency" and items and "pred1" in items[0]:
                raise ScoringError(
                    f"{criterion} needs single-question predictions (Q, pred), not the consistency file's"
                )
            yield criterion, judge_items(judge_spec, criterion, items, cache, backoff_s)


def _subset_of(meta: dict[str, Any]) -> str:
    """A video_chatgpt row's question file (version-1 rows carry no subset)."""
    return meta.get("subset", "consistency" if "pair" in meta else "generic")


def run_batches(rows: list[RunRow]) -> list[tuple[tuple[str, ...], list[dict[str, Any]]]]:
    """A video_chatgpt run's judge items per subset (keyed by the question file's entry); a
    consistency pair with an error in either answer is left out whole."""
    broken = {(_subset_of(meta), meta.get("id")) for row, meta in rows if row.get("error") is not None}
    records: dict[tuple[str, Any], dict[str, Any]] = {}
    for row, meta in rows:
        subset = _subset_of(meta)
        if row.get("error") is not None or (subset, meta["id"]) in broken:
            continue
        record = records.setdefault((subset, meta["id"]), {"A": meta["answer"]})
        suffix = str(meta["pair"]) if "pair" in meta else ""
        record[f"Q{suffix}"] = meta["question"]
        record[f"pred{suffix}"] = row["output_text"] or ""
    by_subset: dict[str, list[dict[str, Any]]] = {}
    for (subset, entry), record in sorted(records.items()):
        by_subset.setdefault(subset, []).append(to_judge_item(str(entry), record))
    return [(SUBSET_CRITERIA[subset], items) for subset, items in by_subset.items()]


JUDGE_CACHE_FILE = "videogen.judged.jsonl"
EXACT_JUDGE_ERROR = ("the exact judge cannot grade free-form video descriptions; re-score with "
                     "scoring.judge set to openai:MODEL[@BASE_URL], hf:PATH or replay:FILE")


def run_outcomes(rows: list[RunRow], context: ScoringContext) -> list[dict[str, Any]]:
    """Each row's judged scores under its subset's criteria (`<criterion>` and
    `<criterion>_error`), judged by the run's `scoring.judge` and cached in the run folder.

    The two rows of a consistency pair are one item (`item`, resampled together); the first
    carries its score (`counted`). Error rows are not judged and count in n_errors.
    """
    judgements: dict[str, dict[str, Any]] = {}
    judge_spec = context.judge
    if context.judge != "exact":  # a string match cannot grade a description: aggregate says so
        cache = Path(context.run_dir) / JUDGE_CACHE_FILE
        for criterion, (judge, judged, unjudged) in judge_batches(run_batches(rows), context.judge, cache):
            judge_spec = judge.spec
            subset = CRITERION_SUBSET[criterion]
            for entry, judgement in judged.items():
                judgements.setdefault(f"{subset}/{entry}", {})[criterion] = reply_score(judgement)
            for entry, error in unjudged.items():
                judgements.setdefault(f"{subset}/{entry}", {}).update({criterion: None, f"{criterion}_error": error})
    outcomes, seen = [], set()
    for row, meta in rows:
        subset, entry = _subset_of(meta), str(meta.get("id"))
        item = f"{subset}/{entry}"
        counted = item in judgements and item not in seen
        seen.add(item)
        outcomes.append({"item": item, "entry": entry, "subset": subset, "failed": row.get("error") is not None,
                         "counted": counted, "judge": judge_spec, **judgements.get(item, {})})
    return outcomes


def aggregate(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """`score_textgen`'s result over the counted items, criteria in the benchmark's order."""
    n_errors = sum(o["failed"] for o in outcomes)
    judge = outcomes[0]["judge"] if outcomes else None
    if judge == "exact":
        return {"judge": "exact", "criteria": {}, "n_errors": n_errors, "error": EXACT_JUDGE_ERROR}
    result: dict[str, Any] = {"judge": judge, "criteria": {}}
    counted = [o for o in outcomes if o["counted"]]
    for criterion in CRITERIA:
        entries = [o for o in counted if criterion in o]
        if not entries:
            continue
        scores = [o[criterion] for o in entries if o[criterion] is not None]
        unjudged = {o["entry"]: o[f"{criterion}_error"] for o in entries if o[criterion] is None}
        result["criteria"][criterion] = criterion_result(scores, unjudged)
        result[criterion] = result["criteria"][criterion]["average_score"]
    return {**result, "n_errors": n_errors}


METRICS.register("videogen")(Metric(
    name="videogen",
    description="Video-ChatGPT's 5 text-generation criteria (0-5 each) from an LLM judge, on the run's subset.",
    per_sample=run_outcomes,
    aggregate=aggregate,
    higher_is_better={criterion: True for criterion in CRITERIA},
    cluster="item",
))
