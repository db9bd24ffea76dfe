"""MME (Fu et al., 2023), scored as MME's eval_tool `calculation.py`.

Reference: the MME eval_tool `calculation.py` (BradyFU/Awesome-Multimodal-Large-Language-Models,
Evaluation branch; copies in many repos, e.g. zjunlp/Deco eval_tool/calculation.py). It reads
one `<task>.txt` per subtask, lines `image<TAB>question<TAB>gt<TAB>response`, and takes
consecutive lines in pairs (the two questions of one image). Per answer, lower-cased: exactly
"yes"/"no", else the first four characters decide: containing "yes" → yes, else containing "no"
→ no ("not sure" → no), else "other", which is always wrong. acc = correct / questions,
acc+ = images with both answers right / images; task score = acc×100 + acc+×100; Perception and
Cognition sum their tasks' scores (the MME scale: 0–2000 and 0–800).

Where the reference asserts (a task with an odd number of lines, a gt not yes/no, a line
without four fields) we raise a ScoringError naming the file and line. Tasks absent from the
folder are listed in `missing_tasks` and count 0 toward the totals. In a run, rows are grouped
by task and image, and an error row counts as an "other" answer (wrong) and in n_errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.api import METRICS, Metric, ScoringError, per_row

EVAL_TYPES = {
    "perception": ["existence", "count", "position", "color", "posters", "celebrity", "scene",
                   "landmark", "artwork", "OCR"],
    "cognition": ["commonsense_reasoning", "numerical_calculation", "text_translation",
                  "code_reasoning"],
}

Item = tuple[str, str, str, str]  # (image, question, gt, response)


def parse_answer(response: str) -> str:
    """The reference's parse_pred_ans on a lower-cased response: 'yes', 'no' or 'other'."""
    if response in ("yes", "no"):
        return response
    prefix = response[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def score_task(items: list[Item], where: str) -> dict[str, float]:
    """acc, acc_plus and score (×100 scale) of one task's items, taken in consecutive pairs."""
    if len(items) % 2:
        raise ScoringError(f"{where}: {len(items)} questions, an odd number; MME pairs two per image")
    correct = correct_images = 0
    for start in range(0, len(items), 2):
        right = 0
        for offset, (_, _, gt, response) in enumerate(items[start:start + 2]):
            gt = gt.lower()
            if gt not in ("yes", "no"):
                raise ScoringError(f"{where}: question {start + offset + 1}: gt {gt!r} is not yes/no")
            right += parse_answer(response.lower()) == gt
        correct += right
        correct_images += right == 2
    acc = correct / len(items)
    acc_plus = correct_images / (len(items) // 2)
    return {"acc": acc, "acc_plus": acc_plus, "score": acc * 100 + acc_plus * 100}


def score_tasks(tasks: dict[str, tuple[list[Item], str]]) -> dict[str, Any]:
    """Scores every task (name → (items, where they came from)); both paths end here."""
    if not tasks:
        raise ScoringError("no MME tasks to score")
    scored = {name: score_task(items, where) for name, (items, where) in sorted(tasks.items())}
    totals = {kind: sum(scored[t]["score"] for t in names if t in scored) for kind, names in EVAL_TYPES.items()}
    known = {t for names in EVAL_TYPES.values() for t in names}
    return {
        "perception": totals["perception"],
        "cognition": totals["cognition"],
        "total": totals["perception"] + totals["cognition"],
        "tasks": scored,
        "missing_tasks": sorted(known - set(scored)),
    }


def read_results(directory: str | Path) -> dict[str, tuple[list[Item], str]]:
    """Reads MME's eval_tool result folder: one `<task>.txt` per task, four tab-separated fields."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such folder")
    tasks = {}
    for path in sorted(directory.glob("*.txt")):
        items = []
        # readlines() keeps each line's newline on the response, as the reference does.
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle.readlines(), start=1):
                fields = line.split("\t")
                if len(fields) != 4:
                    raise ScoringError(f"{path}:{number}: expected 4 tab-separated fields, got {len(fields)}")
                items.append(tuple(fields))
        tasks[path.stem] = (items, str(path))
    if not tasks:
        raise ScoringError(f"{directory}: no <task>.txt result files")
    return tasks


def sample_outcome(row: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """One run row's MME outcome; an error row answers "other" (wrong), as in score_run before."""
    failed = row.get("error") is not None
    pred = "other" if failed else parse_answer((row["output_text"] or "").lower())
    gt = str(metadata["gt"])
    return {"task": metadata["task"], "image": metadata["image"], "question": metadata["question"], "gt": gt,
            "pred": pred, "correct": pred == gt.lower(), "failed": failed,
            "pair": f"{metadata['task']}/{metadata['image']}"}


def aggregate(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """MME's scores of outcomes, grouped by task and image (the two questions of an image pair).

    The prediction stands in for the response: parse_answer maps "yes", "no" and "other" to
    themselves, so the scores are those of the responses.
    """
    grouped: dict[str, dict[str, list[Item]]] = {}
    for o in outcomes:
        grouped.setdefault(o["task"], {}).setdefault(o["image"], []).append((o["image"], o["question"], o["gt"], o["pred"]))
    tasks = {task: ([item for image_items in images.values() for item in image_items], f"task {task}")
             for task, images in grouped.items()}
    return {**score_tasks(tasks), "n_errors": sum(o["failed"] for o in outcomes)}


METRICS.register("mme")(Metric(
    name="mme",
    description="MME perception and cognition (acc + acc+ per task, 0-200 each); an error row is a wrong answer.",
    per_sample=per_row(sample_outcome),
    aggregate=aggregate,
    higher_is_better={"total": True, "perception": True, "cognition": True},
    cluster="pair",
))
