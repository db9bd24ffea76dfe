"""MM-Vet's GPT grader against MM-Vet's own evaluator, run offline on the fixture.

tests/fixtures/mm_vet/README.md says where every file comes from and how reference/ was made
(mm-vet_evaluator.py with LLaVA-1.5-13B's recorded GPT-4 grades pre-filled, and once with a
stub client replaying them, one unusable reply included, to record the prompts it sends).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eval.api import ScoringContext, ScoringError
from eval.criteria import MM_VET_PROMPT, MM_VET_RETRY_SUFFIX
from eval.metrics.mm_vet import (
    GRADES_FILE,
    capability_scores,
    read_items,
    read_metadata,
    read_results,
    score_grades,
)
from jobs.cli import main
from judge_server import ChatEndpoint
from eval.scoring import DESCRIPTIVE_KEYS, evaluate, samples_table
from pipeline.schema import to_table

FIXTURE = Path(__file__).parent / "fixtures" / "mm_vet"
GRADES = FIXTURE / "llava-v1.5-13b_gpt-4-grade-1runs.json"
RESULTS = FIXTURE / "llava-v1.5-13b.json"


def _items() -> list[dict]:
    return read_items(read_metadata(FIXTURE), read_results(RESULTS))


def _reference_csv(name: str) -> dict[str, float]:
    with (FIXTURE / "reference" / name).open() as handle:
        header, row = list(csv.reader(handle))
    return {key: float(value) for key, value in zip(header[1:], row[1:]) if key not in ("std", "runs")}


def test_the_prompts_sent_equal_the_evaluators_including_its_retry(tmp_path):
    # The reference run's stub answered "N/A" to v1_3 first (stub_replies.json): so does this one.
    items = _items()[:4]
    recorded = json.loads(GRADES.read_text())
    by_pred = {item["pred"]: recorded[item["id"]]["content"][0] for item in items}
    asked: set[str] = set()

    def reply(body):
        row = body["messages"][0]["content"].removeprefix(MM_VET_PROMPT + "\n").removesuffix(MM_VET_RETRY_SUFFIX)
        pred = row.split(" | ")[2]
        first_time = pred not in asked
        asked.add(pred)
        return "N/A" if first_time and pred == items[3]["pred"] else by_pred[pred]

    assert json.loads((FIXTURE / "reference" / "stub_replies.json").read_text())[3] == "N/A"
    with ChatEndpoint(reply) as endpoint:
        result, grades = score_grades(items, f"openai:gpt-4-0613@{endpoint.url}", tmp_path / "c.jsonl")
    reference_calls = [json.loads(line) for line in (FIXTURE / "reference" / "gpt_calls_first5.jsonl").open()]
    # The 4 items run concurrently, so the requests arrive in any order: compare as multisets
    # (the 5th reference call is its retry of v1_3, prompt suffix and temperature included).
    key = lambda call: json.dumps(call, sort_keys=True)  # noqa: E731
    assert sorted(map(key, endpoint.requests)) == sorted(map(key, reference_calls))
    assert result["n"] == 4 and result["n_unjudged"] == 0
    reference_grades = json.loads(GRADES.read_text())
    assert {k: g["score"] for k, g in grades.items()} == {k: reference_grades[k]["score"] for k in grades}


def test_capability_tables_equal_the_evaluators(tmp_path):
    result, grades = score_grades(_items(), f"replay:{GRADES}", tmp_path / "c.jsonl")
    expected = _reference_csv("llava-v1.5-13b_gpt-4-0613-cap-score-1runs.csv")
    assert round(result["total"] * 100, 1) == expected.pop("total")
    assert {cap: round(score * 100, 1) for cap, score in result["capabilities"].items()} == expected
    integrations = _reference_csv("llava-v1.5-13b_gpt-4-0613-cap-int-score-1runs.csv")
    integrations.pop("total")
    # The reference names an integration by joining a Python set (order varies); compare as sets.
    ours = {frozenset(name.split("_")): round(score * 100, 1) for name, score in result["capability_integrations"].items()}
    assert ours == {frozenset(name.split("_")): score for name, score in integrations.items()}
    assert list(result["capabilities"]) == list(expected)  # the evaluator's column order (most common first)
    assert grades == {k: {**v, "model": [f"replay:{GRADES}"]} for k, v in json.loads(GRADES.read_text()).items()}


def test_total_of_all_218_published_grades_equals_the_published_table():
    grades = json.loads((FIXTURE / "llava-v1.5-13b_gpt-4-grade-1runs.all.json").read_text())
    published = _reference_csv("../llava-v1.5-13b_gpt-4-cap-score-1runs.published.csv")
    scores = capability_scores([(g["score"][0], ["any"]) for g in grades.values()])
    assert len(grades) == 218 and round(scores["total"] * 100, 1) == published["total"] == 36.1


def test_score_command(tmp_path):
    out = tmp_path / "mmvet.json"
    assert main(["score", "mm-vet", "--metadata", str(FIXTURE / "mm-vet.json"), "--results", str(RESULTS),
                 "--judge", f"replay:{GRADES}", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["total"] == pytest.approx(0.125)
    assert json.loads((tmp_path / "mmvet.json.grades.json").read_text()).keys() == json.loads(GRADES.read_text()).keys()


def test_bad_inputs_fail_with_one_line(tmp_path):
    with pytest.raises(ScoringError, match="needs an LLM judge"):
        score_grades(_items(), "exact", tmp_path / "c.jsonl")
    results = json.loads(RESULTS.read_text())
    results.pop("v1_3")
    with pytest.raises(ScoringError, match="no answer for MM-Vet sample 'v1_3'"):
        read_items(read_metadata(FIXTURE), results)
    (tmp_path / "mm-vet.json").write_text('{"v1_0": {"question": "q"}}')
    with pytest.raises(ScoringError, match="entry 'v1_0': missing key 'answer'"):
        read_metadata(tmp_path)


def test_run_path_scores_as_the_file_path(tmp_path):
    metadata = read_metadata(FIXTURE)
    results = read_results(RESULTS)
    rows = [{"run_id": "r", "sample_id": f"mm_vet-{key}", "benchmark": "mm_vet", "model": "m", "method": "greedy",
             "metadata": json.dumps({"id": key, "capability": metadata[key]["capability"]}),
             "output_text": results[key], "error": None} for key in metadata]
    context = ScoringContext(benchmark_root=FIXTURE, run_dir=tmp_path, judge=f"replay:{GRADES}")
    rows[1] = {**rows[1], "output_text": None, "error": "image missing"}
    result = evaluate("mm_vet", to_table(rows), context)
    from_run = {k: v for k, v in result.output.items() if k not in DESCRIPTIVE_KEYS}
    items = [item for item in _items() if item["id"] != rows[1]["sample_id"].removeprefix("mm_vet-")]
    from_file, grades = score_grades(items, f"replay:{GRADES}", tmp_path / "file.jsonl")
    assert from_run == {**from_file, "n_errors": 1}  # the error row is counted, not graded
    # Per sample: each graded row carries its grade; the error row none. A standard error per total.
    by_id = {o["id"]: o for o in result.outcomes}
    assert by_id[items[0]["id"]]["score"] == grades[items[0]["id"]]["score"][0]
    assert by_id[rows[1]["sample_id"].removeprefix("mm_vet-")]["failed"] and result.output["stderr"]["total"] > 0
    assert samples_table({"mm_vet": result}).num_rows == len(rows)  # samples.parquet takes them
    assert (tmp_path / GRADES_FILE).is_file()
