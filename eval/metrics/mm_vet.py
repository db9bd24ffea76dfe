"""MM-Vet: each answer graded 0–1 by a GPT grader against the ground truth, and the totals per
capability and per capability integration, as MM-Vet's evaluator does.

Reference: yuweihao/MM-Vet `mm-vet_evaluator.py` (the grading prompt, its retry prompt and the
reply parsing live in the `mm_vet_grade` criterion, eval/criteria.py; this module is its
`export_result`). For one run of the grader: per capability c, score = Σ grade of the samples
with c / number of samples with c × 100, rounded to 1 decimal; per capability integration
(the exact set of a sample's capabilities) the same over the samples with that set; `total`
over every sample. halleval writes them as fractions (36.1 → 0.361).

Differences from the reference, all deliberate: a sample whose grade never parses (or is NaN)
is left unjudged and reported, and the averages are over graded samples (the reference scores
it 0.0 after 5 tries, and accepts NaN); integration names join the capabilities sorted (the
reference joins a Python set, whose order changes from process to process). The grades are
also written in the reference's grade-file format ({id: {model, content, score}}), which its
export step reads.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from eval.api import METRICS, Metric, RunRow, ScoringContext, ScoringError
from eval.io import require
from eval.judges import JudgeCache, JudgeSettings, judge_all, make_judge, require_llm_judge
from eval.metrics._rows import counting_errors, judged_rows

METADATA_FILE = "mm-vet.json"
GRADES_FILE = "mm_vet.grades.json"
JUDGE_CACHE_FILE = "mm_vet.judged.jsonl"


def _read_object(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file ({what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ScoringError(f"{path}: not a JSON file ({what}): {error}") from None
    if not isinstance(data, dict):
        raise ScoringError(f"{path}: expected a JSON object keyed by sample id ({what})")
    return data


def read_metadata(path: str | Path) -> dict[str, dict[str, Any]]:
    """mm-vet.json (or the folder holding it): {id: {question, answer, capability, ...}}."""
    metadata = _read_object(path, "MM-Vet's mm-vet.json")
    for key, entry in metadata.items():
        if not isinstance(entry, dict):
            raise ScoringError(f"{path}: entry {key!r} is not an object")
        require(entry, ("question", "answer", "capability"), f"{path}: entry {key!r}")
    return metadata


def read_items(metadata: dict[str, dict[str, Any]], results: dict[str, Any], every_sample: bool = True,
               results_name: str = "the results") -> list[dict[str, Any]]:
    """Grading items in mm-vet.json order: {id, question, answer, pred, capability}.

    Args:
        metadata: from `read_metadata`.
        results: id → the model's answer (MM-Vet's results JSON).
        every_sample: a sample without an answer is an error (else left out: a `limit` run).
        results_name: names the results in errors.
    """
    items = []
    for key, entry in metadata.items():
        if key not in results:
            if every_sample:
                raise ScoringError(f"{results_name}: no answer for MM-Vet sample {key!r}")
            continue
        if not isinstance(results[key], str):
            raise ScoringError(f"{results_name}: the answer of {key!r} is not a string")
        items.append({"id": key, "question": entry["question"], "answer": entry["answer"],
                      "pred": results[key], "capability": list(entry["capability"])})
    return items


def capability_scores(grades: list[tuple[float, list[str]]]) -> dict[str, Any]:
    """export_result's tables for one grader run, as fractions (rounded as the reference rounds).

    Args:
        grades: (grade, the sample's capabilities) of every graded sample.
    """
    per_capability: Counter[str] = Counter()
    per_set: Counter[frozenset[str]] = Counter()
    sums: dict[str, float] = {}
    set_sums: dict[frozenset[str], float] = {}
    for grade, capabilities in grades:
        caps = frozenset(capabilities)
        per_capability.update(caps)
        per_set[caps] += 1
        for cap in caps:
            sums[cap] = sums.get(cap, 0.0) + grade
        set_sums[caps] = set_sums.get(caps, 0.0) + grade

    def fraction(total: float, count: int) -> float:
        return round(total / count * 100, 1) / 100

    return {
        "total": fraction(sum(grade for grade, _ in grades), len(grades)) if grades else None,
        "capabilities": {cap: fraction(sums[cap], n) for cap, n in per_capability.most_common()},
        "capability_integrations": {"_".join(sorted(caps)): fraction(set_sums[caps], n)
                                    for caps, n in per_set.most_common()},
    }


def grade_outcomes(items: list[dict[str, Any]], judge_spec: str, cache: Path,
                   settings: JudgeSettings | None = None) -> list[dict[str, Any]]:
    """Each item's grade (cached): {id, capability, score or None, content, judge_error, judge}."""
    require_llm_judge(judge_spec, "MM-Vet's GPT grader")
    judge = make_judge(judge_spec)
    judged, unjudged = judge_all(judge, "mm_vet_grade", items, JudgeCache(cache), settings=settings)
    outcomes = []
    for item in items:
        reply = judged.get(item["id"], {})
        outcomes.append({"id": item["id"], "capability": item["capability"], "score": reply.get("score"),
                         "content": reply.get("content"), "judge_error": unjudged.get(item["id"]), "judge": judge.spec})
    return outcomes


def grade_scores(outcomes: list[dict[str, Any]], judge_spec: str | None = None) -> dict[str, Any]:
    """The totals per capability over the graded outcomes, the ungraded reported."""
    graded = [(o["score"], o["capability"]) for o in outcomes if o["score"] is not None]
    unjudged = [{"id": o["id"], "error": o["judge_error"]} for o in outcomes if o["score"] is None]
    return {**capability_scores(graded), "n": len(graded), "n_unjudged": len(unjudged), "unjudged": unjudged,
            "judge": outcomes[0]["judge"] if outcomes else judge_spec}


def score_grades(items: list[dict[str, Any]], judge_spec: str, cache: Path,
                 settings: JudgeSettings | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Grades every item with the judge (cached) and totals per capability.

    Returns:
        (result, grades): the scores, and the grades in MM-Vet's grade-file format.
    """
    outcomes = grade_outcomes(items, judge_spec, cache, settings)
    return grade_scores(outcomes, judge_spec), grade_file(outcomes)


def grade_file(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The graded outcomes in MM-Vet's grade-file format ({id: {model, content, score}})."""
    return {o["id"]: {"model": [o["judge"]], "content": [o["content"]], "score": [o["score"]]}
            for o in outcomes if o["score"] is not None}


def write_grades(grades: dict[str, Any], path: Path) -> Path:
    """Writes grades as MM-Vet's grade file (`<model>_<gpt>-grade-1runs.json`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(grades, indent=4, ensure_ascii=False), encoding="utf-8")
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    """MM-Vet's results JSON: {id: answer}."""
    return _read_object(path, "MM-Vet results, {id: answer}")


def run_outcomes(rows: list[RunRow], context: ScoringContext) -> list[dict[str, Any]]:
    """The run's answers graded by `scoring.judge` against the benchmark folder's mm-vet.json;
    the grades (MM-Vet's grade file) and the judge cache are kept in the run folder. Error rows
    are counted, not graded."""
    results = {meta["id"]: row["output_text"] or "" for row, meta in rows if row.get("error") is None and "id" in meta}
    metadata = read_metadata(Path(context.benchmark_root) / METADATA_FILE)
    items = read_items(metadata, results, every_sample=False)
    graded = {o["id"]: o for o in grade_outcomes(items, context.judge, Path(context.run_dir) / JUDGE_CACHE_FILE)}
    write_grades(grade_file(list(graded.values())), Path(context.run_dir) / GRADES_FILE)
    return judged_rows(rows, graded, "id", {"capability": None, "score": None, "content": None, "judge_error": None,
                                            "judge": context.judge})


METRICS.register("mm_vet")(Metric(
    name="mm_vet",
    description="MM-Vet total and per-capability scores from an LLM grader (0-1 per answer), as its evaluator totals.",
    per_sample=run_outcomes,
    aggregate=counting_errors(grade_scores),
    higher_is_better={"total": True},
))
