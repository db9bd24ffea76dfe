"""LLaVA-Bench (in-the-wild): GPT review of each answer against the reference answer, and the
relative score, as LLaVA does.

Reference: haotian-liu/LLaVA `llava/eval/eval_gpt_review_bench.py` (the review: prompt and
reply parsing live in the `llava_bench_review` criterion, eval/criteria.py) and
`llava/eval/summarize_gpt_review.py` (the summary). Per category (`llava_bench_conv`,
`_detail`, `_complex`) and over all reviews: the mean of the (reference, model) score pairs,
each rounded to 3 decimals, then relative = round(model / reference × 100, 1) and each
score ×10 rounded to 1 decimal. halleval writes them as fractions (72.8 → 0.728).

Differences from the reference, all deliberate: answers are paired with questions by
`question_id` (the reference zips the three files by line, so one missing line shifts every
later review); a review whose first line is not two scores (or holds a non-finite or
out-of-range one) is retried, then left unjudged and reported (the reference records [-1, -1]
and averages it in). The reviews are written in the reference's own review format
(`{id, question_id, answer1_id, answer2_id, category, content, tuple}`), so
summarize_gpt_review.py reads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from eval.api import METRICS, Metric, RunRow, ScoringContext, ScoringError
from eval.criteria import LLAVA_RULES
from eval.io import read_records, require
from eval.judges import JudgeCache, JudgeSettings, judge_all, make_judge, require_llm_judge
from eval.metrics._rows import counting_errors, judged_rows

REVIEWS_FILE = "llava_bench.reviews.jsonl"
JUDGE_CACHE_FILE = "llava_bench.judged.jsonl"


def read_items(questions: str | Path, context: str | Path, reference_answers: str | Path,
               answers: dict[Any, dict[str, Any]], every_question: bool = True) -> list[dict[str, Any]]:
    """Review items in question order: the question, its image's caption, the reference answer
    (answer1, GPT-4's) and the model's (answer2).

    Args:
        questions: questions.jsonl ({question_id, image, text, category}).
        context: context.jsonl ({image, caption}).
        reference_answers: answers_gpt4.jsonl ({question_id, text[, answer_id]}).
        answers: question_id → the model's answer record ({text[, answer_id]}).
        every_question: a question without an answer is an error (else it is left out: a run
            over a `limit` subset answers only some).

    Raises:
        ScoringError: a file lacks a key, a question has no caption, no reference answer or no
            model answer (named with the file and the question id).
    """
    captions = {}
    for index, record in enumerate(read_records(context)):
        require(record, ("image", "caption"), f"{context}: record {index + 1}")
        captions[record["image"]] = record["caption"]
    references = {}
    for index, record in enumerate(read_records(reference_answers)):
        require(record, ("question_id", "text"), f"{reference_answers}: record {index + 1}")
        references[record["question_id"]] = record
    items = []
    for index, question in enumerate(read_records(questions)):
        require(question, ("question_id", "image", "text", "category"), f"{questions}: record {index + 1}")
        qid = question["question_id"]
        if f"llava_bench_{question['category']}" not in LLAVA_RULES:
            raise ScoringError(f"{questions}: record {index + 1}: category {question['category']!r} has no review "
                               f"rule; expected one of {', '.join(k.removeprefix('llava_bench_') for k in LLAVA_RULES)}")
        if qid not in answers:
            if every_question:
                raise ScoringError(f"the answers have no answer for question_id {qid!r} of {questions}")
            continue
        if question["image"] not in captions:
            raise ScoringError(f"{context}: no caption for image {question['image']!r} (question_id {qid!r})")
        if qid not in references:
            raise ScoringError(f"{reference_answers}: no reference answer for question_id {qid!r}")
        reference, answer = references[qid], answers[qid]
        items.append({
            "id": qid, "category": question["category"], "context": captions[question["image"]],
            "question": question["text"], "answer1": reference["text"], "answer2": answer["text"],
            "answer1_id": reference.get("answer_id", qid), "answer2_id": answer.get("answer_id", qid),
        })
    return items


def read_answers(path: str | Path) -> dict[Any, dict[str, Any]]:
    """LLaVA's model_vqa.py answer JSONL ({question_id, text, ...}) by question_id."""
    answers = {}
    for index, record in enumerate(read_records(path)):
        require(record, ("question_id", "text"), f"{path}: record {index + 1}")
        if record["question_id"] in answers:
            raise ScoringError(f"{path}: record {index + 1}: question_id {record['question_id']!r} repeats")
        answers[record["question_id"]] = record
    return answers


def summarize(reviews: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """summarize_gpt_review.py's numbers per category and `all`, as fractions."""
    pairs: dict[str, list[list[float]]] = {}
    for review in reviews:
        pairs.setdefault(review["category"], []).append(review["tuple"])
        pairs.setdefault("all", []).append(review["tuple"])
    summary = {}
    for category, values in sorted(pairs.items()):
        reference, model = (round(x, 3) for x in np.asarray(values).mean(0).tolist())
        summary[category.removeprefix("llava_bench_")] = {
            "relative_score": round(model / reference * 100, 1) / 100 if reference else None,
            "reference_score": round(reference * 10, 1) / 100,
            "model_score": round(model * 10, 1) / 100,
            "n": len(values),
        }
    return summary


def review_outcomes(items: list[dict[str, Any]], judge_spec: str, cache: Path,
                    settings: JudgeSettings | None = None) -> list[dict[str, Any]]:
    """Each item's review (cached): {id, category, tuple (reference, model) or None,
    judge_error, judge, review (the reference's review-file record, or None)}."""
    require_llm_judge(judge_spec, "LLaVA-Bench's GPT review")
    judge = make_judge(judge_spec)
    judged, unjudged = judge_all(judge, "llava_bench_review", items, JudgeCache(cache), settings=settings)
    outcomes = []
    for number, item in enumerate(items, start=1):
        category = f"llava_bench_{item['category']}"
        reply = judged.get(item["id"])
        review = None if reply is None else {
            "id": number, "question_id": item["id"], "answer1_id": item["answer1_id"],
            "answer2_id": item["answer2_id"], "category": category, **reply,
        }
        outcomes.append({"id": item["id"], "category": category, "tuple": None if reply is None else reply["tuple"],
                         "judge_error": unjudged.get(item["id"]), "judge": judge.spec, "review": review})
    return outcomes


def review_scores(outcomes: list[dict[str, Any]], judge_spec: str | None = None) -> dict[str, Any]:
    """summarize_gpt_review.py's scores over the reviewed outcomes, the unreviewed reported."""
    summary = summarize([o for o in outcomes if o["tuple"] is not None])
    overall = summary.pop("all", {"relative_score": None, "reference_score": None, "model_score": None, "n": 0})
    unjudged = [{"id": o["id"], "error": o["judge_error"]} for o in outcomes if o["tuple"] is None]
    return {**overall, "categories": summary, "n_unjudged": len(unjudged), "unjudged": unjudged,
            "judge": outcomes[0]["judge"] if outcomes else judge_spec}


def score_reviews(items: list[dict[str, Any]], judge_spec: str, cache: Path,
                  settings: JudgeSettings | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Reviews every item with the judge (cached) and summarises, as the reference does.

    Returns:
        (result, reviews): the scores, and the reviews in the reference's review-file format.
    """
    outcomes = review_outcomes(items, judge_spec, cache, settings)
    return review_scores(outcomes, judge_spec), review_file(outcomes)


def review_file(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reviewed outcomes in the reference's review-file format (summarize_gpt_review.py's input)."""
    return [o["review"] for o in outcomes if o["review"] is not None]


def write_reviews(reviews: list[dict[str, Any]], path: Path) -> Path:
    """Writes reviews as LLaVA's review JSONL (summarize_gpt_review.py reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(review, ensure_ascii=False) + "\n" for review in reviews), encoding="utf-8")
    return path


def run_outcomes(rows: list[RunRow], context: ScoringContext) -> list[dict[str, Any]]:
    """The run's answers reviewed by `scoring.judge` against the benchmark folder's
    answers_gpt4.jsonl, with its context.jsonl captions; the reviews (the reference's file) and
    the judge cache are kept in the run folder. Error rows are counted, not reviewed; questions
    outside the run (a `limit`) are left out."""
    answers = {meta["question_id"]: {"text": row["output_text"] or "", "answer_id": row["sample_id"]}
               for row, meta in rows if row.get("error") is None and "question_id" in meta}
    root = Path(context.benchmark_root)
    items = read_items(root / "questions.jsonl", root / "context.jsonl", root / "answers_gpt4.jsonl",
                       answers, every_question=False)
    reviewed = {o["id"]: o for o in review_outcomes(items, context.judge, Path(context.run_dir) / JUDGE_CACHE_FILE)}
    write_reviews(review_file(list(reviewed.values())), Path(context.run_dir) / REVIEWS_FILE)
    blank = {"category": None, "tuple": None, "judge_error": None, "judge": context.judge, "review": None}
    return judged_rows(rows, reviewed, "question_id", blank)


METRICS.register("llava_bench")(Metric(
    name="llava_bench",
    description="LLaVA-Bench (in-the-wild) relative score from an LLM judge's review, as LLaVA summarises it.",
    per_sample=run_outcomes,
    aggregate=counting_errors(review_scores),
    higher_is_better={"relative_score": True, "model_score": True},
))
