"""LLaVA-Bench (in-the-wild) GPT review against LLaVA's own scripts, run offline on the fixture.

tests/fixtures/llava_bench/README.md says where every file comes from and how the reference
outputs under reference/ were made (eval_gpt_review_bench.py with a stub client replaying
LLaVA's recorded GPT-4 reviews, then summarize_gpt_review.py).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from eval.api import ScoringContext, ScoringError
from eval.metrics.llava_bench import JUDGE_CACHE_FILE, REVIEWS_FILE, read_answers, read_items, score_reviews
from jobs.cli import main
from judge_server import ChatEndpoint
from eval.scoring import DESCRIPTIVE_KEYS, evaluate, samples_table
from pipeline.schema import to_table

FIXTURE = Path(__file__).parent / "fixtures" / "llava_bench"
REVIEWS = FIXTURE / "reviews" / "llava-v1.5-13b-eval1.jsonl"
ANSWERS = FIXTURE / "answers" / "llava-v1.5-13b.jsonl"


def _items(answers: Path = ANSWERS) -> list[dict]:
    return read_items(FIXTURE / "questions.jsonl", FIXTURE / "context.jsonl", FIXTURE / "answers_gpt4.jsonl",
                      read_answers(answers))


def _reference_summary() -> dict[str, tuple[float, float, float]]:
    lines = (FIXTURE / "reference" / "summarize_gpt_review.txt").read_text().splitlines()[1:-1]
    return {line.split()[0].removeprefix("llava_bench_"): tuple(map(float, line.split()[1:])) for line in lines}


def test_the_prompt_sent_equals_the_reference_scripts(tmp_path):
    reviews = [json.loads(line) for line in REVIEWS.read_text().splitlines()]
    by_answer = {item["answer2"]: review["content"] for item, review in zip(_items(), reviews)}

    def reply(body):
        content = body["messages"][1]["content"]
        return by_answer[content.split("[Assistant 2]\n")[1].split("\n\n[End of Assistant 2]")[0]]

    with ChatEndpoint(reply) as endpoint:
        result, _ = score_reviews(_items()[:6], f"openai:gpt-4-0314@{endpoint.url}", tmp_path / "c.jsonl")
    reference_calls = [json.loads(line) for line in (FIXTURE / "reference" / "gpt_calls_first6.jsonl").open()]
    sent = sorted(endpoint.requests, key=lambda body: [c["messages"] for c in reference_calls].index(body["messages"]))
    assert sent == reference_calls  # model, messages (system + user), temperature 0.2, max_tokens 1024
    assert result["n"] == 6 and result["n_unjudged"] == 0


def test_scores_equal_summarize_gpt_review(tmp_path):
    result, reviews = score_reviews(_items(), f"replay:{REVIEWS}", tmp_path / "c.jsonl")
    expected = _reference_summary()
    ours = {"all": result, **result["categories"]}
    assert set(ours) == set(expected)
    for category, (relative, reference, model) in expected.items():
        got = ours[category]
        assert round(got["relative_score"] * 100, 1) == relative, category
        assert round(got["reference_score"] * 100, 1) == reference and round(got["model_score"] * 100, 1) == model
    assert result["relative_score"] == pytest.approx(0.728) and result["n"] == 60
    # The reviews, field by field, are the reference script's own review file.
    reference = [json.loads(line) for line in (FIXTURE / "reference" / "reviews_without_content.jsonl").open()]
    assert [{k: v for k, v in review.items() if k != "content"} for review in reviews] == reference
    assert [r["content"] for r in reviews] == [json.loads(line)["content"] for line in REVIEWS.open()]


def test_answers_pair_by_question_id_whatever_their_order(tmp_path):
    lines = ANSWERS.read_text().splitlines()
    random.Random(0).shuffle(lines)
    shuffled = tmp_path / "answers.jsonl"
    shuffled.write_text("\n".join(lines) + "\n")
    ordered, _ = score_reviews(_items(), f"replay:{REVIEWS}", tmp_path / "a.jsonl")
    reordered, _ = score_reviews(_items(shuffled), f"replay:{REVIEWS}", tmp_path / "b.jsonl")
    assert reordered == ordered


def test_score_command_writes_scores_and_reviews_the_reference_reads(tmp_path, capsys):
    out = tmp_path / "llava.json"
    code = main(["score", "llava-bench", "--questions", str(FIXTURE / "questions.jsonl"),
                 "--context", str(FIXTURE / "context.jsonl"), "--reference-answers", str(FIXTURE / "answers_gpt4.jsonl"),
                 "--answers", str(ANSWERS), "--judge", f"replay:{REVIEWS}", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert round(result["categories"]["detail"]["relative_score"] * 100, 1) == 52.6
    written = [json.loads(line) for line in (tmp_path / "llava.json.reviews.jsonl").open()]
    assert [r["tuple"] for r in written] == [json.loads(line)["tuple"] for line in REVIEWS.open()]


def test_bad_inputs_fail_with_one_line(tmp_path):
    with pytest.raises(ScoringError, match="needs an LLM judge"):
        score_reviews(_items(), "exact", tmp_path / "c.jsonl")
    partial = tmp_path / "answers.jsonl"
    partial.write_text("\n".join(ANSWERS.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ScoringError, match="no answer for question_id 59"):
        _items(partial)
    bad_category = tmp_path / "questions.jsonl"
    bad_category.write_text(json.dumps({"question_id": 0, "image": "001.jpg", "text": "q", "category": "chat"}) + "\n")
    with pytest.raises(ScoringError, match="record 1: category 'chat' has no review rule"):
        read_items(bad_category, FIXTURE / "context.jsonl", FIXTURE / "answers_gpt4.jsonl", read_answers(ANSWERS))


def test_run_path_scores_as_the_file_path_and_keeps_reviews_in_the_run(tmp_path):
    answers = read_answers(ANSWERS)
    rows = [{"run_id": "r", "sample_id": f"llava_bench-{qid}", "benchmark": "llava_bench", "model": "m",
             "method": "greedy", "metadata": json.dumps({"question_id": qid, "category": "x"}),
             "output_text": answer["text"], "error": None}
            for qid, answer in answers.items()]
    rows[0] = {**rows[0], "output_text": None, "error": "image missing"}
    context = ScoringContext(benchmark_root=FIXTURE, run_dir=tmp_path, judge=f"replay:{REVIEWS}")
    result = evaluate("llava_bench", to_table(rows), context)
    from_run = result.output
    assert from_run["n_errors"] == 1 and from_run["n"] == 59  # the error row is counted, not reviewed
    items = [item for item in _items() if item["id"] != 0]
    from_file, reviews = score_reviews(items, f"replay:{REVIEWS}", tmp_path / "file.jsonl")
    assert {k: v for k, v in from_run.items() if k not in ("n_errors", *DESCRIPTIVE_KEYS)} == from_file
    # Per sample: each reviewed row carries its (reference, model) scores; a standard error per score.
    assert [o["tuple"] for o in result.outcomes[1:]] == [review["tuple"] for review in reviews]
    assert result.outcomes[0]["failed"] and result.outcomes[0]["tuple"] is None
    assert from_run["stderr"]["relative_score"] > 0
    assert samples_table({"llava_bench": result}).num_rows == len(rows)  # samples.parquet takes them
    assert (tmp_path / REVIEWS_FILE).is_file() and (tmp_path / JUDGE_CACHE_FILE).is_file()
