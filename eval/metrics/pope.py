"""POPE (Li et al., 2023): yes/no object probing, scored as POPE's and LLaVA's own scripts.

References: AoiDragon/POPE `evaluate.py` and haotian-liu/LLaVA `llava/eval/eval_pope.py`
(the same rule): keep the answer's text before its first '.', remove commas, split on single
spaces; if 'No', 'not' or 'no' is among the words the prediction is no, otherwise yes. So
"Yes." is yes, "No, there is not." is no, "NO" and "Nope" are yes (case and substrings do not
count), and an empty answer is yes. Labels other than "no" count as yes. yes_ratio is the
share of *predicted* yes.

Three ways answers reach the labels, one per file format (`score_files` picks by content):
- POPE's answer file (`{"question", "answer"}` lines, no id): paired with the label file's
  lines by order, as `evaluate.py` does.
- LLaVA's eval bundle (`--annotation-dir pope/coco`, `llava_pope_test.jsonl` with a
  `category`, answers `{"question_id", "text"}`): per category, the category's answers in
  answer-file order are paired with `coco_pope_<category>.json`'s lines by order, as
  `eval_pope.py` does; plus the mean over categories (LLaVA-1.5 reports the mean F1).
- Answers with a `question_id` against a question file with labels: paired by id.
Where the references silently `zip` lists of different lengths (scoring only the shorter), we
refuse with an error naming both counts; where a LLaVA answer's question is not the label
line's question (a misaligned file), we name the line. In a run, an error row is a missing
answer: reported (as n_errors and its question_id in `unanswered`), not scored as yes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eval.api import METRICS, Metric, ScoringError, per_row
from eval.io import read_records, require

NEGATIVE_WORDS = ("No", "not", "no")
LLAVA_LABEL_PREFIX = "coco_pope_"


def parse_answer(text: str) -> str:
    """The reference's yes/no rule for one answer."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if any(word in words for word in NEGATIVE_WORDS) else "yes"


def score_sample(question_id: Any, text: str, label: str) -> dict[str, Any]:
    """The per-sample outcome: the parsed prediction beside its label."""
    return {"question_id": question_id, "pred": parse_answer(text), "label": label}


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def pope_scores(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, yes-ratio and the confusion counts of `score_sample`s.

    Raises:
        ScoringError: there are no outcomes.
    """
    if not outcomes:
        raise ScoringError("no answers to score")
    pairs = [(item["pred"] == "yes", item["label"] != "no") for item in outcomes]
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
        "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": len(pairs), "per_item": list(outcomes),
    }


def score_answers(labels: dict[Any, str], answers: Iterable[tuple[Any, str]]) -> dict[str, Any]:
    """Scores answers paired with labels by question_id (the run path ends here too).

    Args:
        labels: question_id → "yes" | "no".
        answers: (question_id, answer text), one per question.

    Raises:
        ScoringError: an answer's id is unknown or repeated, or a question has no answer.
    """
    outcomes, seen = [], set()
    for question_id, text in answers:
        if question_id not in labels:
            raise ScoringError(f"answer for unknown question_id {question_id!r}")
        if question_id in seen:
            raise ScoringError(f"duplicated answer for question_id {question_id!r}")
        seen.add(question_id)
        outcomes.append(score_sample(question_id, text, labels[question_id]))
    missing = [qid for qid in labels if qid not in seen]
    if missing:
        raise ScoringError(f"no answer for question_id {missing[0]!r} ({len(missing)} unanswered)")
    return pope_scores(outcomes)


def score_in_order(questions: Sequence[dict[str, Any]], texts: Sequence[str], where: str) -> dict[str, Any]:
    """Pairs the i-th answer with the i-th question line, as POPE's evaluate.py does.

    Raises:
        ScoringError: the counts differ (the reference would silently score the shorter list).
    """
    if len(questions) != len(texts):
        raise ScoringError(f"{where}: {len(texts)} answers for {len(questions)} questions; "
                           "answers are paired with questions by line order, so the counts must match")
    return pope_scores([score_sample(q.get("question_id", i + 1), text, q["label"])
                      for i, (q, text) in enumerate(zip(questions, texts))])


def read_labelled_questions(path: str | Path) -> list[dict[str, Any]]:
    """POPE's question file (JSONL, or the JSON array of the SEEM-built files), in file order."""
    records = read_records(path)
    for index, record in enumerate(records):
        require(record, ("label",), f"{path}: record {index + 1}")
    return records


def read_labels(path: str | Path) -> dict[Any, str]:
    """question_id → label from POPE's question file {question_id, image, text, label}."""
    labels: dict[Any, str] = {}
    for index, record in enumerate(read_records(path)):
        place = f"{path}: record {index + 1}"
        require(record, ("question_id", "label"), place)
        if record["question_id"] in labels:
            raise ScoringError(f"{place}: duplicated question_id {record['question_id']!r}")
        labels[record["question_id"]] = record["label"]
    return labels


def read_answers(path: str | Path) -> list[tuple[Any, str]]:
    """(question_id, text) from an answers JSONL {question_id, text} (LLaVA's model_vqa)."""
    answers = []
    for index, record in enumerate(read_records(path)):
        require(record, ("question_id", "text"), f"{path}: record {index + 1}")
        answers.append((record["question_id"], str(record["text"])))
    return answers


def score_llava_bundle(annotation_dir: str | Path, question_file: str | Path,
                       answers_file: str | Path) -> dict[str, Any]:
    """Scores LLaVA's POPE answers per category exactly as `llava/eval/eval_pope.py` does.

    Args:
        annotation_dir: LLaVA's `pope/coco/` (POPE's `coco_pope_<category>.json` label files;
            other files are ignored, where the reference asserts).
        question_file: `llava_pope_test.jsonl` ({question_id, image, text, category}).
        answers_file: the answers ({question_id, text}), in question order.

    Returns:
        {"categories": {category: pope_scores(...)}, "mean": {accuracy, precision, recall, f1,
        yes_ratio averaged over the categories}}.

    Raises:
        ScoringError: an answer's question_id is not in the question file, a category's
            answers and labels differ in number, or an answer's question is not its label's.
    """
    directory = Path(annotation_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such folder (LLaVA's pope/coco with coco_pope_*.json)")
    questions = {}
    for index, record in enumerate(read_records(question_file)):
        require(record, ("question_id", "text", "category"), f"{question_file}: record {index + 1}")
        questions[record["question_id"]] = record
    answers = read_records(answers_file)
    for index, answer in enumerate(answers):
        require(answer, ("question_id", "text"), f"{answers_file}: record {index + 1}")
        if answer["question_id"] not in questions:
            raise ScoringError(f"{answers_file}: record {index + 1}: question_id {answer['question_id']!r} "
                               f"is not in {question_file}")
    label_files = sorted(directory.glob(f"{LLAVA_LABEL_PREFIX}*.json"))
    if not label_files:
        raise ScoringError(f"{directory}: no {LLAVA_LABEL_PREFIX}<category>.json label files")
    categories = {}
    for path in label_files:
        category = path.stem[len(LLAVA_LABEL_PREFIX):]
        labels = read_labelled_questions(path)
        mine = [a for a in answers if questions[a["question_id"]]["category"] == category]
        for number, (answer, label) in enumerate(zip(mine, labels), start=1):
            asked = questions[answer["question_id"]]["text"].split("\n")[0]
            if "text" in label and asked != label["text"]:
                raise ScoringError(f"{path}: line {number} asks {label['text']!r} but the {category} answer "
                                   f"paired with it (question_id {answer['question_id']!r}) answers {asked!r}")
        where = f"{answers_file} (category {category})"
        categories[category] = score_in_order(labels, [str(a["text"]) for a in mine], where)
    keys = ("accuracy", "precision", "recall", "f1", "yes_ratio")
    mean = {key: (None if any(c[key] is None for c in categories.values())
                  else sum(c[key] for c in categories.values()) / len(categories)) for key in keys}
    return {"categories": categories, "mean": mean}


def score_files(questions: str | Path, answers: str | Path,
                annotation_dir: str | Path | None = None) -> dict[str, Any]:
    """`halleval score pope`: picks the pairing from the files' own format (module docstring).

    Raises:
        ScoringError: a malformed file, or answers that do not pair with the questions (the
            message names the answers file).
    """
    if annotation_dir is not None:
        return score_llava_bundle(annotation_dir, questions, answers)
    records = read_records(answers)
    if records and "label" in records[0]:
        raise ScoringError(f"{answers}: has labels, so it is a POPE question file, not answers; pass the "
                           "model's answers ({question_id, text} or {question, answer} lines)")
    try:
        if records and "question_id" not in records[0] and "answer" in records[0]:
            for index, record in enumerate(records):
                require(record, ("answer",), f"{answers}: record {index + 1}")
            return score_in_order(read_labelled_questions(questions), [str(r["answer"]) for r in records],
                                  str(answers))
        return score_answers(read_labels(questions), read_answers(answers))
    except ScoringError as error:
        message = str(error)
        raise ScoringError(message if message.startswith(str(answers)) else f"{answers}: {message}") from None


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
