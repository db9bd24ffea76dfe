"""VizWiz-VQA val accuracy: VQA accuracy over EvalAI-normalised answers.

Reference: haotian-liu/LLaVA `llava/eval/m4c_evaluator.py` (copied there from MMF):
`EvalAIAnswerProcessor` normalises every answer, and `TextVQAAccuracyEvaluator` scores a
prediction against the 10 human answers: for each of the 10 leave-one-out subsets,
min(1, matches among the other 9 / 3), averaged; accuracy = mean over questions. LLaVA's
`scripts/convert_vizwiz_for_submission.py` applies the same processor to the test answers it
uploads to EvalAI (`pipeline.benchmarks.vizwiz.write_submission` calls `normalize_answer`).

Normalisation, quirks kept (tables in `eval/data/evalai_answer_processor.json`, verbatim):
lower-case; drop ',' and '?'; "'s" → " 's"; newlines/tabs → spaces; strip; each punctuation
mark is removed when it touches a space or the text has a digit-comma-digit, else replaced by a
space; periods not between digits are removed, but at most 32 of them (the reference passes
`re.UNICODE` as `re.sub`'s count); number words zero–ten and "none" → digits; articles a/an/the
dropped; contractions restored ("dont" → "don't"; the table's own typo maps "somebody'd" to
"somebodyd"). The regex `(?!<=\\d)(\\.)(?!\\d)` is the reference's (a negative look-ahead,
not the look-behind it meant), kept as is.

The reference asserts exactly 10 human answers; so do we (a ScoringError naming the image). A
run of the test split (no human answers) scores nothing: accuracy null, `n_unscored` rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from eval.api import METRICS, Metric, ScoringError, per_row
from eval.io import read_json_file, read_records, require

TABLES = Path(__file__).resolve().parent.parent / "data" / "evalai_answer_processor.json"
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
PERIOD_STRIP_LIMIT = 32  # re.UNICODE's value, which the reference passes as the count
N_HUMAN_ANSWERS = 10


@lru_cache(maxsize=1)
def _tables() -> dict[str, Any]:
    return json.loads(TABLES.read_text(encoding="utf-8"))


def _punctuation(text: str) -> str:
    has_digit_comma = COMMA_STRIP.search(text) is not None
    out = text
    for mark in _tables()["punctuations"]:
        touches_space = mark + " " in text or " " + mark in text
        out = out.replace(mark, "" if touches_space or has_digit_comma else " ")
    return PERIOD_STRIP.sub("", out, count=PERIOD_STRIP_LIMIT)


def _digits_articles(text: str) -> str:
    tables = _tables()
    words = [tables["number_map"].get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in tables["articles"]]
    return " ".join(tables["contractions"].get(word, word) for word in words)


def normalize_answer(answer: str) -> str:
    """EvalAI's answer processor (`EvalAIAnswerProcessor.__call__`)."""
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles(_punctuation(text))


def score_sample(prediction: str, human_answers: Sequence[str], where: str) -> dict[str, Any]:
    """One question's VQA accuracy (`TextVQAAccuracyEvaluator`), with the normalised answer.

    Raises:
        ScoringError: there are not exactly 10 human answers (the reference asserts).
    """
    if len(human_answers) != N_HUMAN_ANSWERS:
        raise ScoringError(f"{where}: {len(human_answers)} human answers; VQA accuracy needs {N_HUMAN_ANSWERS}")
    humans = [normalize_answer(answer) for answer in human_answers]
    pred = normalize_answer(prediction)
    # Leave each human out in turn; the prediction scores min(1, matches among the rest / 3).
    matches = humans.count(pred)
    per_subset = [min(1.0, (matches - (human == pred)) / 3) for human in humans]
    return {"pred": pred, "accuracy": sum(per_subset) / len(per_subset)}


def aggregate(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean VQA accuracy of `score_sample` outcomes.

    Raises:
        ScoringError: there are no outcomes.
    """
    if not outcomes:
        raise ScoringError("no VizWiz answers to score")
    return {"accuracy": sum(item["accuracy"] for item in outcomes) / len(outcomes),
            "n": len(outcomes), "per_item": list(outcomes)}


def read_annotations(path: str | Path) -> list[dict[str, Any]]:
    """VizWiz's `Annotations/<split>.json`: [{image, question, answers: [{answer, ...}]}]."""
    items = read_json_file(path)
    if not isinstance(items, list):
        raise ScoringError(f"{path}: expected a JSON list of questions")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ScoringError(f"{path}: entry {index + 1}: expected an object")
        require(item, ("image", "answers"), f"{path}: entry {index + 1}")
    return items


def read_answer_texts(path: str | Path, items: Sequence[dict[str, Any]]) -> list[str | None]:
    """The answers in annotation order (None where a question is unanswered), from either
    file LLaVA's VizWiz scripts handle:

    - the EvalAI upload `[{image, answer}]` (halleval's `write_submission`, LLaVA's
      answers_upload), looked up by image;
    - LLaVA's answers JSONL `{question_id, text}`, question_id being the annotation's index as
      in LLaVA's VizWiz question files.
    """
    records = read_records(path)
    if records and "image" in records[0]:
        by_image = {}
        for index, record in enumerate(records):
            require(record, ("image", "answer"), f"{path}: record {index + 1}")
            by_image[record["image"]] = str(record["answer"])
        return [by_image.get(item["image"]) for item in items]
    texts: list[str | None] = [None] * len(items)
    for index, record in enumerate(records):
        require(record, ("question_id", "text"), f"{path}: record {index + 1}")
        qid = record["question_id"]
        if not isinstance(qid, int) or not 0 <= qid < len(items):
            raise ScoringError(f"{path}: record {index + 1}: question_id {qid!r} is not an annotation index "
                               f"(0..{len(items) - 1})")
        texts[qid] = str(record["text"])
    return texts


def score_files(annotations: str | Path, answers: str | Path) -> dict[str, Any]:
    """`halleval score vizwiz`: val accuracy of an answer file against the val annotations.

    Raises:
        ScoringError: an annotation has no answer, or has not 10 human answers.
    """
    items = read_annotations(annotations)
    outcomes = []
    for index, (item, text) in enumerate(zip(items, read_answer_texts(answers, items))):
        if text is None:
            raise ScoringError(f"{answers}: no answer for {item['image']} (annotation {index + 1})")
        humans = [answer.get("answer", "") for answer in item["answers"]]
        outcomes.append({"image": item["image"], **score_sample(text, humans, f"{annotations}: {item['image']}")})
    return aggregate(outcomes)


def sample_outcome(row: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """One run row's outcome. A row without human answers (the test split) or whose entry
    could not be parsed is not scored (`accuracy` null); an error row answers ""."""
    failed = row.get("error") is not None
    if "image" not in meta or not meta.get("answers"):
        return {"image": meta.get("image"), "pred": None, "accuracy": None, "failed": failed}
    text = "" if failed else (row["output_text"] or "")
    return {"image": meta["image"], **score_sample(text, meta["answers"], f"sample {row['sample_id']}"), "failed": failed}


def aggregate_run(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Val: accuracy over the scored rows. Test (no human answers): nothing to score here, so
    the result says so (accuracy null, `n_unscored`) instead of failing the run."""
    scored = [{key: o[key] for key in ("image", "pred", "accuracy")} for o in outcomes if o["accuracy"] is not None]
    counts = {"n_unscored": len(outcomes) - len(scored), "n_errors": sum(o["failed"] for o in outcomes)}
    if not scored:
        return {"accuracy": None, "n": 0, "per_item": [], **counts,
                "note": "no human answers (the test split): submit vizwiz.write_submission's file to EvalAI"}
    return {**aggregate(scored), **counts}


METRICS.register("vizwiz")(Metric(
    name="vizwiz",
    description="VizWiz-VQA val accuracy (EvalAI normalisation, 10 human answers); the test split is not scored.",
    per_sample=per_row(sample_outcome),
    aggregate=aggregate_run,
    higher_is_better={"accuracy": True},
))
