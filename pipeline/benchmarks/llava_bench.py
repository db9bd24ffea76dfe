"""LLaVA-Bench (in-the-wild): 60 open questions on 24 images, judged against GPT-4 answers.

- Paper: Liu et al., "Visual Instruction Tuning" (NeurIPS 2023); files as released on the hub
  (liuhaotian/llava-bench-in-the-wild).
- Layout: `<root>/questions.jsonl` (`{"question_id", "image", "text", "category"}`),
  `<root>/images/`, and optionally `<root>/answers_gpt4.jsonl` (the references).
- Prompt: the question text (LLaVA's `model_vqa.py`).
- Export: `write_answers(table, path)`, the answer JSONL (`{"question_id", "prompt", "text",
  "answer_id", "model_id", "metadata"}`) that LLaVA's `eval_gpt_review_bench.py` reads.
- Version 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.api import Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.benchmarks._common import (
    answer_text,
    error_sample,
    generation_rows,
    missing_keys,
    qa_prompt,
    read_jsonl,
    require,
    seeded_subset,
    write_jsonl,
)
from pipeline.config import BenchmarkConfig

HINT = "download liuhaotian/llava-bench-in-the-wild (questions.jsonl, images/) into the root"


@BENCHMARKS.register("llava_bench")
class LlavaBench:
    """LLaVA-Bench (in-the-wild); exported for LLaVA's GPT review script."""

    name = "llava_bench"
    version = "1"
    modality = "image"
    metrics = ("llava_bench",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields every question of questions.jsonl (or a seeded `limit`), in file order."""
        root = Path(config.root)
        lines = list(read_jsonl(root / "questions.jsonl", "LLaVA-Bench question file", HINT))
        images = require(root / "images", "LLaVA-Bench image folder", HINT)
        references = {}
        if (root / "answers_gpt4.jsonl").is_file():
            for line in read_jsonl(root / "answers_gpt4.jsonl", "LLaVA-Bench answer file", HINT):
                if line.value is not None:
                    references[line.value.get("question_id")] = line.value.get("text")
        seen: set[Any] = set()
        for line in seeded_subset(lines, config.limit, seed):
            row = line.value or {}
            error = line.error
            if error is None and (absent := missing_keys(row, ("question_id", "image", "text"))):
                error = f"line {line.number}: missing {', '.join(absent)}"
            elif error is None and row["question_id"] in seen:
                error = f"line {line.number}: question_id {row['question_id']} repeats"
            if error is not None:
                sample_id = f"llava_bench-line{line.number}"
                yield error_sample(self.name, sample_id, "questions.jsonl", line.number, error)
                continue
            seen.add(row["question_id"])
            yield Sample(
                sample_id=f"llava_bench-{row['question_id']}",
                benchmark=self.name,
                prompt=qa_prompt(row["text"], "", config.prompt),
                image_path=str(images / row["image"]),
                reference=references.get(row["question_id"]),
                metadata={"question_id": row["question_id"], "category": row.get("category"),
                          "line": line.number},
            )


def write_answers(table: Any, path: str | Path, model_id: str = "halleval") -> Path:
    """Writes the answer JSONL of LLaVA's `model_vqa.py`, in questions.jsonl's line order.

    `eval_gpt_review_bench.py` pairs questions, references and answers by line, so the rows
    are sorted by their question's line (Parquet parts come in any order). An error row
    answers "".
    """
    entries = [
        (meta.get("line", 0), meta["question_id"],
         {"question_id": meta["question_id"], "prompt": row["prompt"], "text": answer_text(row),
          "answer_id": row["sample_id"], "model_id": model_id, "metadata": {}})
        for row, meta in generation_rows(table)
        if "question_id" in meta
    ]  # fmt: skip
    # Runs written before `line` was recorded sort by question_id (the released file's order).
    rows = [entry for _, _, entry in sorted(entries, key=lambda e: (e[0], str(e[1]).zfill(12)))]
    write_jsonl(Path(path), rows)
    return Path(path)
