"""ScienceQA accuracy and IMG-accuracy, scored as LLaVA's `llava/eval/eval_science_qa.py`.

Reference: haotian-liu/LLaVA `llava/eval/eval_science_qa.py` (LLaVA-1.5's `sqa.sh`). For every
problem of the split in `pid_splits.json` (text-only ones too), the answer line with that
question_id is parsed, in this order, quirks kept:
- the whole text is one of A–E → that letter;
- it is at least 3 characters, starts with a letter A–E followed by ". " → that letter
  ("B. apostrophe" → B, but "A." → FAILED);
- the regex `The answer is ([A-Z]).` matches exactly once → its letter (the '.' matches any
  character; two matches → FAILED);
- else FAILED.
A letter beyond the problem's choices (E for two choices) or FAILED is wrong. A problem with no
answer line is FAILED with prompt "Unknown". `is_multimodal` is `'<image>' in prompt`, so
IMG-accuracy counts the answers whose *prompt* carries the image token (LLaVA's
`model_vqa_science.py` writes `"<image>\\n" + question`; `scienceqa.write_answers` does too).
Accuracy is over the whole split (missing problems count wrong), IMG-accuracy over the
multimodal answers; both as fractions here (the reference prints percentages). Where the
reference divides by zero (no multimodal answer) the value is null. A question_id answered
twice is an error (the reference silently keeps the last).

In a run (only image problems are generated), each row is one multimodal outcome, its text
stripped as LLaVA's answer writer strips it; an error row answers "" (FAILED, wrong) and counts
in `n_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.api import METRICS, Metric, ScoringError, per_row
from eval.io import read_json_file, read_records, require

OPTIONS = ("A", "B", "C", "D", "E")
ANSWER_PATTERN = re.compile(r"The answer is ([A-Z]).")
FAILED = "FAILED"
IMAGE_TOKEN = "<image>"


def parse_answer(text: str) -> str:
    """The reference's letter (or FAILED) for one answer text."""
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    found = ANSWER_PATTERN.findall(text)
    return found[0] if len(found) == 1 else FAILED


def choice_index(letter: str, n_choices: int) -> int:
    """The chosen option's index, or -1 for FAILED or a letter beyond the choices."""
    return OPTIONS.index(letter) if letter in OPTIONS[:n_choices] else -1


def score_sample(pid: str, problem: dict[str, Any], prediction: dict[str, Any] | None) -> dict[str, Any]:
    """One problem's outcome, with the fields of the reference's per-problem analysis.

    Args:
        pid: the problem id.
        problem: `{"choices": [...], "answer": index}` (problems.json's entry).
        prediction: the answer line `{"text", "prompt"}`, or None when there is none.
    """
    if prediction is None:
        prediction = {"text": FAILED, "prompt": "Unknown"}
    text = prediction["text"]
    parsed = parse_answer(text)
    chosen = choice_index(parsed, len(problem["choices"]))
    return {
        "question_id": pid, "parsed_ans": parsed, "ground_truth": OPTIONS[problem["answer"]],
        "pred": text, "pred_idx": chosen, "is_multimodal": IMAGE_TOKEN in prediction["prompt"],
        "correct": chosen == problem["answer"],
    }


def aggregate(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy over all outcomes and IMG-accuracy over the multimodal ones.

    Raises:
        ScoringError: there are no outcomes.
    """
    if not outcomes:
        raise ScoringError("no ScienceQA problems to score")
    correct = sum(item["correct"] for item in outcomes)
    multimodal = [item for item in outcomes if item["is_multimodal"]]
    img_correct = sum(item["correct"] for item in multimodal)
    return {
        "accuracy": correct / len(outcomes), "correct": correct, "count": len(outcomes),
        "img_accuracy": img_correct / len(multimodal) if multimodal else None,
        "img_correct": img_correct, "img_count": len(multimodal),
        "results": {item["question_id"]: item["pred_idx"] for item in outcomes},
        "per_item": list(outcomes),
    }


def read_split(base_dir: str | Path, split: str) -> dict[str, dict[str, Any]]:
    """The split's problems from `problems.json` and `pid_splits.json`, in pid_splits order."""
    base = Path(base_dir)
    splits = read_json_file(base / "pid_splits.json")
    problems = read_json_file(base / "problems.json")
    if not isinstance(splits, dict) or split not in splits:
        raise ScoringError(f"{base / 'pid_splits.json'}: no split {split!r}")
    if not isinstance(problems, dict):
        raise ScoringError(f"{base / 'problems.json'}: expected an object pid -> problem")
    chosen = {}
    for pid in splits[split]:
        if pid not in problems:
            raise ScoringError(f"{base / 'pid_splits.json'}: pid {pid!r} of split {split!r} is not in problems.json")
        require(problems[pid], ("choices", "answer"), f"{base / 'problems.json'}: pid {pid}")
        chosen[pid] = problems[pid]
    return chosen


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """question_id → {text, prompt} from LLaVA's answer JSONL; a repeated id is an error."""
    predictions: dict[str, dict[str, Any]] = {}
    for index, record in enumerate(read_records(path)):
        place = f"{path}: record {index + 1}"
        require(record, ("question_id", "prompt", "text"), place)
        if record["question_id"] in predictions:
            raise ScoringError(f"{place}: question_id {record['question_id']!r} is answered twice")
        predictions[record["question_id"]] = {"text": str(record["text"]), "prompt": str(record["prompt"])}
    return predictions


def score_files(base_dir: str | Path, result_file: str | Path, split: str = "test") -> dict[str, Any]:
    """`halleval score scienceqa`: the reference's accuracy and IMG-accuracy for an answer file."""
    problems = read_split(base_dir, split)
    predictions = read_predictions(result_file)
    unknown = [pid for pid in predictions if pid not in problems]
    result = aggregate([score_sample(pid, problem, predictions.get(pid)) for pid, problem in problems.items()])
    return {**result, "split": split, "n_unknown_answers": len(unknown)}


def sample_outcome(row: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """One run row's outcome; a row whose problem could not be parsed has no choices to score
    against (`scored` false)."""
    failed = row.get("error") is not None
    if "pid" not in meta:
        return {"question_id": None, "scored": False, "failed": failed}
    problem = {"choices": meta["choices"], "answer": OPTIONS.index(meta["answer"])}
    # stripped, as LLaVA's model_vqa_science.py writes its answers
    text = "" if failed else (row["output_text"] or "").strip()
    return {**score_sample(meta["pid"], problem, {"text": text, "prompt": IMAGE_TOKEN}), "scored": True, "failed": failed}


def aggregate_run(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`aggregate` over a run's scored outcomes, plus its error count."""
    scored = [{key: value for key, value in o.items() if key not in ("scored", "failed")} for o in outcomes if o["scored"]]
    return {**aggregate(scored), "n_errors": sum(o["failed"] for o in outcomes)}


METRICS.register("scienceqa")(Metric(
    name="scienceqa",
    description="ScienceQA-IMG accuracy as LLaVA's eval_science_qa.py parses answers; an error row is wrong.",
    per_sample=per_row(sample_outcome),
    aggregate=aggregate_run,
    higher_is_better={"accuracy": True, "img_accuracy": True},
))
