"""ScienceQA-IMG: multiple-choice science questions that come with an image.

- Paper: Lu et al., "Learn to Explain" (NeurIPS 2022); files as released (ScienceQA/data/scienceqa).
- Subset: test (default), val, train, minival; only problems with an image (the -IMG set).
- Layout: `<root>/problems.json` (pid -> {question, choices, answer, hint, image, ...}),
  `<root>/pid_splits.json` ({split: [pid, ...]}), images at `<root>/images/<split>/<pid>/image.png`
  as ScienceQA's `data/scienceqa` and LLaVA-1.5's `playground/data/eval/scienceqa` lay them out
  (`<root>/<split>/<pid>/` also works).
- Prompt (LLaVA-1.5): "Context: <hint>\\n" when there is a hint, the question, one line per
  option ("A. ..."), then "Answer with the option's letter from the given choices directly."
- Reference: the answer's letter. Scored by metric `scienceqa` (= LLaVA's `eval_science_qa.py`).
  Export: `write_answers(table, path)`, LLaVA's answer JSONL (`{"question_id", "prompt",
  "text"}`, the prompt starting with "<image>\\n" as `model_vqa_science.py` writes it, which is
  what the reference's IMG-Accuracy counts) that `eval_science_qa.py` scores.
- Version 1.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.api import BenchmarkError, Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.benchmarks._common import (
    answer_text,
    error_sample,
    generation_rows,
    missing_keys,
    qa_prompt,
    read_json,
    seeded_subset,
    write_jsonl,
)
from pipeline.config import BenchmarkConfig

INSTRUCTION = "Answer with the option's letter from the given choices directly."
HINT = "download ScienceQA's data/scienceqa (problems.json, pid_splits.json, images/<split>/)"
IMAGE_TOKEN = "<image>"


def image_folder(root: Path, split: str) -> Path:
    """`<root>/images/<split>` (the release) or `<root>/<split>`, whichever exists."""
    for folder in (root / "images" / split, root / split):
        if folder.is_dir():
            return folder
    raise BenchmarkError(
        f"ScienceQA image folder {root / 'images' / split} does not exist; {HINT}"
    )


def question_text(problem: dict[str, Any]) -> str:
    """The question block: optional context, the question and lettered options."""
    options = [
        f"{string.ascii_uppercase[i]}. {choice}" for i, choice in enumerate(problem["choices"])
    ]
    context = [f"Context: {problem['hint']}"] if problem.get("hint") else []
    return "\n".join([*context, problem["question"], *options])


@BENCHMARKS.register("scienceqa")
class ScienceQA:
    """ScienceQA-IMG multiple choice; exported for LLaVA's `eval_science_qa.py`."""

    name = "scienceqa"
    version = "1"
    modality = "image"
    metrics = ("scienceqa",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields the split's problems that have an image, in pid_splits order."""
        split = config.subset or "test"
        root = Path(config.root)
        problems = read_json(root / "problems.json", "ScienceQA problems file", HINT)
        splits = read_json(root / "pid_splits.json", "ScienceQA split file", HINT)
        if split not in splits:
            raise BenchmarkError(
                f"ScienceQA split {split!r} is not in pid_splits.json; use {', '.join(splits)}"
            )
        pids = [pid for pid in splits[split] if (problems.get(pid) or {}).get("image")]
        images = image_folder(root, split)
        for pid in seeded_subset(pids, config.limit, seed):
            problem = problems[pid]
            absent = missing_keys(problem, ("question", "choices", "answer"))
            if absent or not 0 <= problem["answer"] < len(problem["choices"]):
                error = (
                    f"pid {pid}: missing {', '.join(absent)}"
                    if absent
                    else f"pid {pid}: answer out of range"
                )
                yield error_sample(self.name, f"scienceqa-{pid}", "problems.json", 0, error)
                continue
            yield Sample(
                sample_id=f"scienceqa-{pid}",
                benchmark=self.name,
                prompt=qa_prompt(question_text(problem), INSTRUCTION, config.prompt),
                image_path=str(images / pid / problem["image"]),
                reference=string.ascii_uppercase[problem["answer"]],
                metadata={
                    "pid": pid,
                    "answer": string.ascii_uppercase[problem["answer"]],
                    "choices": problem["choices"],
                },  # fmt: skip
            )


def write_answers(table: Any, path: str | Path) -> Path:
    """Writes LLaVA's answer JSONL (`{"question_id", "prompt", "text"}`) for `eval_science_qa.py`.

    As `model_vqa_science.py` writes it: the prompt prefixed with "<image>\\n" (the reference
    counts IMG-Accuracy over prompts containing "<image>" and divides by zero without them) and
    the answer stripped. An error row answers "", which the reference counts as wrong.
    """
    rows = [
        {"question_id": meta["pid"], "prompt": f"{IMAGE_TOKEN}\n{row['prompt']}",
         "text": answer_text(row).strip()}
        for row, meta in generation_rows(table)
        if "pid" in meta
    ]  # fmt: skip
    write_jsonl(Path(path), rows)
    return Path(path)
