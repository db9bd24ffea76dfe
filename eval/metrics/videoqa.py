"""Video QA (MSVD-QA, MSRVTT-QA, ActivityNet-QA) scored by an LLM judge, as Video-ChatGPT does.

Reference: mbzuai-oryx/Video-ChatGPT `quantitative_evaluation/evaluate_activitynet_qa.py` and
its copy in PKU-YuanGroup/Video-LLaVA `videollava/eval/video/eval_video_qa.py` (the same
prompt and aggregation; they differ only in the file they read). Per judged item (the
per-sample functions): score = int(reply['score']) (4.8 → 4); the verdict is yes when "yes" is
a substring of reply['pred'].lower(), else no when "no" is (so "not sure" is no), else neither.
Aggregate: accuracy = yes / (yes + no); average_score = Σscore / judged.

Prediction files read (`read_predictions`): Video-LLaVA's `merge.jsonl` and Video-ChatGPT's
inference output (`{id, question, answer, pred}`), the list Video-ChatGPT's evaluation script
reads (`{video_name, Q, A, pred}`; items are keyed `<video_name>_<n>` as that script keys
them), and halleval's own export, which carries both.

Items the judge could not judge after the retries are reported (`n_unjudged`, `unjudged`) and
left out of every average, never counted as "no" (the reference loops until every item is
judged). In a run, error rows are counted in n_errors and not judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.api import METRICS, Metric, RunRow, ScoringContext, ScoringError
from eval.io import read_records
from eval.judges import Judge, JudgeCache, judge_all, make_judge
from eval.metrics._rows import counting_errors, judged_rows

QA_LAYOUTS = {
    "video_llava": ("id", "question", "answer", "pred"),
    "video_chatgpt": ("video_name", "Q", "A", "pred"),
}
"""The keys of each reference's QA prediction file (Video-LLaVA's merge.jsonl / Video-ChatGPT's
evaluate_activitynet_qa.py input)."""


def cache_path(out: str | Path | None, source: str | Path) -> Path:
    """The judge cache beside the output (or beside the input when printing to stdout)."""
    anchor = Path(out) if out is not None else Path(source)
    return anchor.with_name(anchor.name + ".judged.jsonl")


def judge_items(
    judge_spec: str, criterion: str, items: list[dict[str, Any]], cache: Path, backoff_s: float = 1.0
) -> tuple[Judge, dict[Any, dict[str, Any]], dict[Any, str]]:
    """Judges items on one criterion through the reply cache.

    Returns:
        (the judge, id → judgement, id → last error of each unjudged item)

    Raises:
        ScoringError: two items share an id (the cache is keyed by id).
    """
    seen: set[str] = set()
    for item in items:
        if str(item["id"]) in seen:
            raise ScoringError(f"duplicated id {item['id']!r}; the judge cache is keyed by id")
        seen.add(str(item["id"]))
    judge = make_judge(judge_spec)
    judged, unjudged = judge_all(judge, criterion, items, JudgeCache(cache), backoff_s=backoff_s)
    return judge, judged, unjudged


def reply_score(judgement: dict[str, Any]) -> int:
    """One judged item's score, as the references compute it: int(reply['score'])."""
    return int(judgement["score"])


def qa_verdict(judgement: dict[str, Any]) -> str | None:
    """One judged QA item's verdict: "yes" if "yes" ⊂ pred.lower(), else "no" if "no" ⊂ it, else None."""
    pred = str(judgement["pred"]).lower()
    if "yes" in pred:
        return "yes"
    return "no" if "no" in pred else None


def aggregate_qa(judgements: list[dict[str, Any]]) -> dict[str, Any]:
    """The references' aggregate over judged items: yes/no counts, accuracy and mean score."""
    verdicts = [qa_verdict(j) for j in judgements]
    scores = [reply_score(j) for j in judgements]
    yes, no = verdicts.count("yes"), verdicts.count("no")
    return {
        "accuracy": yes / (yes + no) if yes + no else None,
        "average_score": sum(scores) / len(scores) if scores else None,
        "yes": yes, "no": no, "n": len(judgements),
    }  # fmt: skip


def unjudged_list(unjudged: dict[Any, str]) -> list[dict[str, Any]]:
    return [{"id": item_id, "error": error} for item_id, error in unjudged.items()]


def score_qa(items: list[dict[str, Any]], judge_spec: str, cache: Path, backoff_s: float = 1.0) -> dict[str, Any]:
    """Judges {id, question, answer, pred} items; the function both the CLI and runs go through.

    `backoff_s` is the first retry's wait after a failed judgement (it doubles per retry).
    """
    return qa_scores(qa_outcomes(items, judge_spec, cache, backoff_s))


def qa_outcomes(items: list[dict[str, Any]], judge_spec: str, cache: Path, backoff_s: float = 1.0) -> list[dict[str, Any]]:
    """Each item's judgement (the per-sample function): {id, judged, pred (the judge's), verdict,
    score, judge_error, judge}; an item the judge could not judge has judged False."""
    judge, judged, unjudged = judge_items(judge_spec, "qa", items, cache, backoff_s)
    outcomes = []
    for item in items:
        reply = judged.get(item["id"])
        if reply is None:
            outcomes.append({"id": item["id"], "judged": False, "pred": None, "verdict": None, "score": None,
                             "judge_error": unjudged.get(item["id"]), "judge": judge.spec})
        else:
            outcomes.append({"id": item["id"], "judged": True, "pred": str(reply["pred"]), "verdict": qa_verdict(reply),
                             "score": reply_score(reply), "judge_error": None, "judge": judge.spec})
    return outcomes


def qa_scores(outcomes: list[dict[str, Any]], judge_spec: str | None = None) -> dict[str, Any]:
    """aggregate_qa over the judged outcomes, with the unjudged ones reported and the judge named."""
    judged = [o for o in outcomes if o["judged"]]
    unjudged = {o["id"]: o["judge_error"] for o in outcomes if not o["judged"]}
    return {
        **aggregate_qa(judged),
        "n_unjudged": len(unjudged), "unjudged": unjudged_list(unjudged),
        "judge": outcomes[0]["judge"] if outcomes else judge_spec,
    }  # fmt: skip


def video_chatgpt_keys(records: list[dict[str, Any]]) -> list[str]:
    """Video-ChatGPT's item keys, `<video_name>_<n>` with n counting that video's earlier records."""
    counts: dict[str, int] = {}
    keys = []
    for record in records:
        name = str(record["video_name"])
        counts[name] = counts.get(name, -1) + 1
        keys.append(f"{name}_{counts[name]}")
    return keys


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Reads a QA prediction file of either reference layout as {id, question, answer, pred} items.

    A record with `id` keeps it; one in Video-ChatGPT's layout only is keyed `<video_name>_<n>`.

    Raises:
        ScoringError: a record that fits neither layout (names the file, the record and the keys).
    """
    records = read_records(path)
    layouts = " or ".join(f"{{{', '.join(keys)}}} ({name})" for name, keys in QA_LAYOUTS.items())
    items = []
    for index, record in enumerate(records):
        if "subset" in record:  # halleval's video_chatgpt export: the same keys, another prompt
            raise ScoringError(f"{path}: record {index + 1} is a video_chatgpt prediction (subset "
                               f"{record['subset']!r}); score it with `halleval score videogen`")
        if all(key in record for key in QA_LAYOUTS["video_llava"]):
            items.append({key: record[key] for key in QA_LAYOUTS["video_llava"]})
        elif all(key in record for key in QA_LAYOUTS["video_chatgpt"]):
            items.append({"video_name": record["video_name"], "question": record["Q"],
                          "answer": record["A"], "pred": record["pred"]})  # fmt: skip
        else:
            raise ScoringError(f"{path}: record {index + 1} has keys {sorted(record)}; expected {layouts}")
    keyless = [item for item in items if "video_name" in item]
    for item, key in zip(keyless, video_chatgpt_keys(keyless), strict=True):
        item["id"] = key
        del item["video_name"]
    return items


JUDGE_CACHE_FILE = "videoqa.judged.jsonl"


def run_outcomes(rows: list[RunRow], context: ScoringContext) -> list[dict[str, Any]]:
    """Judge verdicts of a run's rows, cached in the run folder (a re-score never asks twice);
    error rows are not judged and count in n_errors."""
    items = [{"id": meta["id"], "question": meta["question"], "answer": meta.get("answer", row.get("reference")),
              "pred": row["output_text"] or ""} for row, meta in rows if row.get("error") is None]
    verdicts = {o["id"]: o for o in qa_outcomes(items, context.judge, Path(context.run_dir) / JUDGE_CACHE_FILE)}
    blank = {"judged": False, "pred": None, "verdict": None, "score": None, "judge_error": None, "judge": context.judge}
    return judged_rows(rows, verdicts, "id", blank)


METRICS.register("videoqa")(Metric(
    name="videoqa",
    description="Video QA accuracy and mean score (0-5) from an LLM judge, as Video-ChatGPT scores them.",
    per_sample=run_outcomes,
    aggregate=counting_errors(qa_scores),
    higher_is_better={"accuracy": True, "average_score": True},
))
