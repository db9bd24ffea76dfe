"""POPE (Li et al., 2023): yes/no object probing, scored as the POPE repository's evaluate.py.

Reference: RUCAIBox/POPE `evaluate.py` (the same rule is LLaVA's `eval_pope.py`): keep the
answer's text before its first '.', remove commas, split on single spaces; if 'No', 'not' or
'no' is among the words the prediction is no, otherwise yes. So "Yes." is yes, "No, there is
not." is no, "NO" and "Nope" are yes (case and substrings do not count), and an empty answer is
yes. yes_ratio is the share of *predicted* yes.

Unlike the reference, which pairs the answer and label files by line order, we pair them by
question_id; a missing or duplicated id is an error naming it. In a run, an error row is a
missing answer: reported (as n_errors and its question_id in `unanswered`), not scored as yes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from eval.api import METRICS, Metric, ScoringError, per_row
from eval.io import read_records, require

NEGATIVE_WORDS = ("No", "not", "no")


def parse_answer(text: str) -> str:
    """The reference's yes/no rule for one answer."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if any(word in words for word in NEGATIVE_WORDS) else "yes"


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def score_answers(labels: dict[Any, str], answers: Iterable[tuple[Any, str]]) -> dict[str, Any]:
    """Scores answers against labels; the function both the CLI and runs go through.

    Args:
        labels: question_id → "yes" | "no".
        answers: (question_id, answer text), one per question.

    Raises:
        ScoringError: an answer's id is unknown or repeated, or a question has no answer.
    """
    per_item, seen = [], set()
    for question_id, text in answers:
        if question_id not in labels:
            raise ScoringError(f"answer for unknown question_id {question_id!r}")
        if question_id in seen:
            raise ScoringError(f"duplicated answer for question_id {question_id!r}")
        seen.add(question_id)
        per_item.append({"question_id": question_id, "pred": parse_answer(text), "label": labels[question_id]})
    missing = [qid for qid in labels if qid not in seen]
    if missing:
        raise ScoringError(f"no answer for question_id {missing[0]!r} ({len(missing)} unanswered)")
    return pope_scores(per_item)


def pope_scores(per_item: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, yes-ratio and counts of {question_id, pred, label} items."""
    if not per_item:
        raise ScoringError("no answers to score")
    # The reference maps every label other than 'no' to yes.
    pairs = [(item["pred"] == "yes", item["label"] != "no") for item in per_item]
    tp = sum(p and l for p, l in pairs)
    fp = sum(p and not l for p, l in pairs)
    tn = sum(not p and not l for p, l in pairs)
    fn = sum(not p and l for p, l in pairs)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else (
        None if precision is None or recall is None else 0.0)
    return {
        "accuracy": (tp + tn) / len(pairs), "precision": precision, "recall": recall, "f1": f1,
        "yes_ratio": sum(p for p, _ in pairs) / len(pairs),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": len(pairs), "per_item": per_item,
    }


def read_labels(path: str | Path) -> dict[Any, str]:
    """question_id → label from POPE's question JSONL {question_id, image, text, label}."""
    labels: dict[Any, str] = {}
    for index, record in enumerate(read_records(path)):
        place = f"{path}: record {index + 1}"
        require(record, ("question_id", "label"), place)
        if record["question_id"] in labels:
            raise ScoringError(f"{place}: duplicated question_id {record['question_id']!r}")
        labels[record["question_id"]] = record["label"]
    return labels


def read_answers(path: str | Path) -> list[tuple[Any, str]]:
    """(question_id, text) from an answers JSONL {question_id, text}."""
    answers = []
    for index, record in enumerate(read_records(path)):
        require(record, ("question_id", "text"), f"{path}: record {index + 1}")
        answers.append((record["question_id"], str(record["text"])))
    return answers


def sample_outcome(row: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """One run row's POPE outcome: its label, and its prediction and correctness when answered."""
    answered = row.get("error") is None
    pred = parse_answer(row["output_text"] or "") if answered else None
    label = metadata.get("label")
    return {"question_id": metadata.get("question_id"), "label": label, "pred": pred,
            "correct": (pred == "yes") == (label != "no") if answered else None}


def aggregate(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """POPE's scores over the answered outcomes; error rows are reported as unanswered."""
    answered = [o for o in outcomes if o["pred"] is not None]
    per_item = [{"question_id": o["question_id"], "pred": o["pred"], "label": o["label"]} for o in answered]
    return {**pope_scores(per_item), "n_errors": len(outcomes) - len(answered),
            "unanswered": [o["question_id"] for o in outcomes if o["pred"] is None]}


METRICS.register("pope")(Metric(
    name="pope",
    description="POPE accuracy, precision, recall, F1 and yes-ratio; an error row is unanswered, not yes.",
    per_sample=per_row(sample_outcome),
    aggregate=aggregate,
    higher_is_better={"f1": True, "accuracy": True, "precision": True, "recall": True},
))
