"""Video QA and video text generation scored by an LLM judge, as Video-ChatGPT does.

Reference: mbzuai-oryx/Video-ChatGPT `quantitative_evaluation/evaluate_activitynet_qa.py` (QA)
and `evaluate_benchmark_{1_correctness,2_detailed_orientation,3_context,4_temporal,
5_consistency}.py` (text generation). Per judged item: score = int(reply['score']) (4.8 → 4);
for QA, pred counts yes when "yes" is a substring of pred.lower(), else no when "no" is (so
"not sure" is no), else neither. accuracy = yes / (yes + no); average_score = Σscore / judged.
The consistency reference fills both questions from Q1 (a bug we keep: `question2` = Q1).

Items the judge could not judge after the retries are reported (`n_unjudged`, `unjudged`) and
left out of every average, never counted as "no". In a run, error rows are counted in n_errors
and not judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.api import METRICS, Metric, RunRow, ScoringContext, ScoringError
from eval.io import read_records, require
from eval.judges import JudgeCache, judge_all, make_judge

CRITERIA = ("correctness", "detail", "context", "temporal", "consistency")
"""The 5 video text-generation criteria (Video-ChatGPT's benchmark), in its order."""


def cache_path(out: str | Path | None, source: str | Path) -> Path:
    """The judge cache beside the output (or beside the input when printing to stdout)."""
    anchor = Path(out) if out is not None else Path(source)
    return anchor.with_name(anchor.name + ".judged.jsonl")


def _judged_items(judge_spec: str, criterion: str, items: list[dict[str, Any]], cache: Path,
                  backoff_s: float):
    seen: set[str] = set()
    for item in items:
        if str(item["id"]) in seen:
            raise ScoringError(f"duplicated id {item['id']!r}; the judge cache is keyed by id")
        seen.add(str(item["id"]))
    judge = make_judge(judge_spec)
    judged, unjudged = judge_all(judge, criterion, items, JudgeCache(cache), backoff_s=backoff_s)
    return judge, judged, unjudged


def score_qa(items: list[dict[str, Any]], judge_spec: str, cache: Path, backoff_s: float = 1.0) -> dict[str, Any]:
    """Judges {id, question, answer, pred} items; the function both the CLI and runs go through.

    `backoff_s` is the first retry's wait after a failed judgement (it doubles per retry).
    """
    return aggregate_qa(qa_outcomes(items, judge_spec, cache, backoff_s))


def qa_outcomes(items: list[dict[str, Any]], judge_spec: str, cache: Path, backoff_s: float = 1.0) -> list[dict[str, Any]]:
    """Each item's judge verdict: {id, judged, verdict (yes|no|None), score, judge_error, judge}."""
    judge, judged, unjudged = _judged_items(judge_spec, "qa", items, cache, backoff_s)
    outcomes = []
    for item in items:
        key = str(item["id"])
        reply = judged.get(key) or judged.get(item["id"])
        if reply is None:
            error = unjudged.get(key, unjudged.get(item["id"]))
            outcomes.append({"id": key, "judged": False, "verdict": None, "score": None, "judge_error": error,
                             "judge": judge.spec})
            continue
        pred = str(reply["pred"]).lower()
        verdict = "yes" if "yes" in pred else "no" if "no" in pred else None
        outcomes.append({"id": key, "judged": True, "verdict": verdict, "score": int(reply["score"]),
                         "judge_error": None, "judge": judge.spec})
    return outcomes


def aggregate_qa(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Video-ChatGPT's accuracy (yes / (yes + no)) and mean score over the judged outcomes."""
    judged = [o for o in outcomes if o["judged"]]
    yes = sum(o["verdict"] == "yes" for o in judged)
    no = sum(o["verdict"] == "no" for o in judged)
    scores = [o["score"] for o in judged]
    return {
        "accuracy": yes / (yes + no) if yes + no else None,
        "average_score": sum(scores) / len(scores) if scores else None,
        "yes": yes, "no": no, "n": len(judged), "n_unjudged": len(outcomes) - len(judged),
        "unjudged": [{"id": o["id"], "error": o["judge_error"]} for o in outcomes if not o["judged"]],
        "judge": outcomes[0]["judge"] if outcomes else None,
    }


def score_generation(items: list[dict[str, Any]], judge_spec: str, cache: Path,
                     criteria: tuple[str, ...] = CRITERIA, backoff_s: float = 1.0) -> dict[str, Any]:
    """Judges video text generation on each criterion (mean of int(score), 0–5).

    Items are {id, question, answer, pred}; consistency items also need question2 and pred2
    (the reference then passes question1 = question2 = the first question).
    """
    result: dict[str, Any] = {"judge": judge_spec, "criteria": {}}
    for criterion in criteria:
        if criterion == "consistency":
            batch = [{**item, "question1": item["question"], "question2": item["question"],
                      "pred1": item["pred"], "pred2": item["pred2"]} for item in items if "pred2" in item]
        else:
            batch = items
        judge, judged, unjudged = _judged_items(judge_spec, criterion, batch, cache, backoff_s)
        scores = [int(j["score"]) for j in judged.values()]
        result["criteria"][criterion] = {
            "average_score": sum(scores) / len(scores) if scores else None,
            "n": len(judged), "n_unjudged": len(unjudged),
            "unjudged": [{"id": i, "error": e} for i, e in unjudged.items()],
        }
        result["judge"] = judge.spec
    return result


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Reads JSONL (or a JSON list) of {id, question, answer, pred}."""
    items = []
    for index, record in enumerate(read_records(path)):
        require(record, ("id", "question", "answer", "pred"), f"{path}: record {index + 1}")
        items.append(record)
    return items


JUDGE_CACHE_FILE = "videoqa.judged.jsonl"


def run_outcomes(rows: list[RunRow], context: ScoringContext) -> list[dict[str, Any]]:
    """Judge verdicts of a run's rows, cached in the run folder (a re-score never asks twice);
    error rows are not judged and count in n_errors."""
    items = [{"id": meta["id"], "question": meta["question"], "answer": meta.get("answer", row.get("reference")),
              "pred": row["output_text"] or ""} for row, meta in rows if row.get("error") is None]
    verdicts = iter(qa_outcomes(items, context.judge, Path(context.run_dir) / JUDGE_CACHE_FILE))
    return [next(verdicts) | {"failed": False} if row.get("error") is None else
            {"id": str(meta.get("id")), "judged": False, "verdict": None, "score": None, "judge_error": None,
             "judge": context.judge, "failed": True}
            for row, meta in rows]


def aggregate(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Video QA scores of the rows that generated; error rows are counted, never judged."""
    generated = [o for o in outcomes if not o["failed"]]
    return {**aggregate_qa(generated), "n_errors": len(outcomes) - len(generated)}


METRICS.register("videoqa")(Metric(
    name="videoqa",
    description="Video QA accuracy and mean score (0-5) from an LLM judge, as Video-ChatGPT scores them.",
    per_sample=run_outcomes,
    aggregate=aggregate,
    higher_is_better={"accuracy": True, "average_score": True},
))
