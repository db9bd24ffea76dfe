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

import pyarrow as pa

from eval.api import METRICS, ScoringContext, ScoringError
from eval.metrics._rows import split_rows

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


@METRICS.register("mme")
class MmeMetric:
    """MME over a run: task, image, question and gt from each row's metadata."""

    name = "mme"
    higher_is_better = {"perception": True, "cognition": True, "total": True}

    def score_run(self, generations: pa.Table, context: ScoringContext) -> dict[str, Any]:
        rows, failed = split_rows(generations)
        grouped: dict[str, dict[str, list[Item]]] = {}
        for row, meta in rows + failed:
            response = (row["output_text"] or "") if row.get("error") is None else ""
            item = (meta["image"], meta["question"], meta["gt"], response)
            grouped.setdefault(meta["task"], {}).setdefault(meta["image"], []).append(item)
        tasks = {task: ([item for image_items in images.values() for item in image_items], f"task {task}")
                 for task, images in grouped.items()}
        return {**score_tasks(tasks), "n_errors": len(failed)}
