"""POPE against hand-computed expectations (POPE evaluate.py / LLaVA eval_pope rule)."""

import json
from pathlib import Path

import pytest

from conftest import run_scores
from eval.api import ScoringContext, ScoringError
from eval.metrics.pope import parse_answer, read_answers, read_labels, score_answers
from pipeline.schema import to_table

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"


@pytest.mark.parametrize("text, pred", [
    ("Yes.", "yes"), ("yes", "yes"), ("No, there is not.", "no"), ("There is no dog", "no"),
    ("NO", "yes"), ("Not really.", "yes"), ("", "yes"), ("Yes. But no.", "yes"), ("no.", "no"),
    ("It is not,", "no"), ("Nope", "yes"),
])
def test_parse_answer(text, pred):
    assert parse_answer(text) == pred


def test_scores_match_hand_computation():
    result = score_answers(read_labels(FIXTURES / "pope_questions.jsonl"), read_answers(FIXTURES / "pope_answers.jsonl"))
    assert (result["tp"], result["fp"], result["tn"], result["fn"], result["n"]) == (2, 2, 1, 1, 6)
    assert result["accuracy"] == pytest.approx(3 / 6)
    assert result["precision"] == pytest.approx(2 / 4)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert result["yes_ratio"] == pytest.approx(4 / 6)
    assert result["per_item"][4] == {"question_id": "q5", "pred": "yes", "label": "no"}


def test_missing_unknown_and_duplicated_ids_are_errors():
    labels = {"q1": "yes", "q2": "no"}
    with pytest.raises(ScoringError, match="no answer for question_id 'q2'"):
        score_answers(labels, [("q1", "yes")])
    with pytest.raises(ScoringError, match="duplicated answer for question_id 'q1'"):
        score_answers(labels, [("q1", "yes"), ("q1", "no")])
    with pytest.raises(ScoringError, match="unknown question_id 'q9'"):
        score_answers(labels, [("q9", "yes")])


def test_run_path_equals_file_path_and_reports_error_rows():
    questions = [json.loads(l) for l in (FIXTURES / "pope_questions.jsonl").read_text().splitlines()]
    answers = dict(read_answers(FIXTURES / "pope_answers.jsonl"))
    rows = [{"run_id": "r", "sample_id": q["question_id"], "benchmark": "pope", "model": "m", "method": "greedy",
             "metadata": json.dumps({"question_id": q["question_id"], "label": q["label"]}),
             "output_text": answers[q["question_id"]]} for q in questions]
    rows.append({"run_id": "r", "sample_id": "q7", "benchmark": "pope", "model": "m", "method": "greedy",
                 "metadata": json.dumps({"question_id": "q7", "label": "no"}), "error": "timeout"})
    from_run = run_scores("pope", to_table(rows), ScoringContext(Path("."), Path(".")))
    assert from_run.pop("n_errors") == 1 and from_run.pop("unanswered") == ["q7"]
    assert from_run == score_answers(read_labels(FIXTURES / "pope_questions.jsonl"), list(answers.items()))
