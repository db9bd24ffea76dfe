"""MME against hand-computed expectations (MME eval_tool calculation.py)."""

import json
from pathlib import Path

import pytest

from conftest import run_scores
from eval.api import ScoringContext, ScoringError
from eval.metrics.mme import parse_answer, read_results, score_tasks
from pipeline.schema import to_table

FIXTURES = Path(__file__).parent / "fixtures" / "metrics" / "mme"


@pytest.mark.parametrize("answer, label", [
    ("yes", "yes"), ("no", "no"), ("yes, there is", "yes"), ("not sure", "no"), ("nope", "no"),
    ("there is", "other"), ("yes!", "yes"), ("i don't know", "other"), ("no\n", "no"), ("", "other"),
])
def test_parse_answer(answer, label):
    assert parse_answer(answer) == label


def test_scores_match_hand_computation():
    result = score_tasks(read_results(FIXTURES))
    assert result["tasks"]["existence"] == {"acc": 0.75, "acc_plus": 0.5, "score": 125.0}
    assert result["tasks"]["count"] == {"acc": 0.5, "acc_plus": 0.0, "score": 50.0}
    assert result["tasks"]["code_reasoning"]["score"] == 200.0
    assert (result["perception"], result["cognition"], result["total"]) == (175.0, 200.0, 375.0)
    assert "OCR" in result["missing_tasks"]


def test_odd_number_of_questions_is_an_error(tmp_path):
    (tmp_path / "color.txt").write_text("a.jpg\tRed?\tYes\tyes\na.jpg\tBlue?\tNo\tno\nb.jpg\tRed?\tYes\tyes\n")
    with pytest.raises(ScoringError, match=r"color.txt: 3 questions, an odd number"):
        score_tasks(read_results(tmp_path))
    (tmp_path / "color.txt").write_text("a.jpg\tRed? yes\n")
    with pytest.raises(ScoringError, match=r"color.txt:1: expected 4 tab-separated fields"):
        read_results(tmp_path)


def test_run_path_equals_file_path():
    rows = []
    for task, (items, _) in read_results(FIXTURES).items():
        for i, (image, question, gt, response) in enumerate(items):
            rows.append({"run_id": "r", "sample_id": f"{task}-{i}", "benchmark": "mme", "model": "m",
                         "method": "greedy", "output_text": response.rstrip("\n"),
                         "metadata": json.dumps({"task": task, "image": image, "question": question, "gt": gt})})
    from_run = run_scores("mme", to_table(rows), ScoringContext(Path("."), Path(".")))
    assert from_run.pop("n_errors") == 0
    assert from_run == score_tasks(read_results(FIXTURES))
