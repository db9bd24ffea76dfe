"""MM-Vet: open-ended questions over integrated capabilities, judged by GPT-4.

- Paper: Yu et al., "MM-Vet" (ICML 2024); files as released (mm-vet.zip).
- Layout: `<root>/mm-vet.json` (`{"v1_0": {"imagename", "capability", "question",
  "answer"}, ...}`) and `<root>/images/`.
- Prompt: the question (LLaVA-1.5's `llava-mm-vet.jsonl`).
- Export: `write_results(table, path)`, the `{"v1_0": "<answer>", ...}` JSON that MM-Vet's
  evaluator (`mm-vet_evaluator.py`) grades.
- Version 1.
"""

from __future__ import annotations

import json
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
    read_json,
    require,
    seeded_subset,
)
from pipeline.config import BenchmarkConfig

HINT = "download mm-vet.zip from the MM-Vet release and unzip it as the root"


@BENCHMARKS.register("mm_vet")
class MmVet:
    """MM-Vet; exported for MM-Vet's GPT-4 grader."""

    name = "mm_vet"
    version = "1"
    modality = "image"
    metrics = ("mm_vet",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields every question of mm-vet.json (or a seeded `limit`), in file order."""
        root = Path(config.root)
        items = read_json(root / "mm-vet.json", "MM-Vet question file", HINT)
        images = require(root / "images", "MM-Vet image folder", HINT)
        for number, (key, item) in seeded_subset(
            list(enumerate(items.items(), start=1)), config.limit, seed
        ):
            if not isinstance(item, dict) or missing_keys(item, ("imagename", "question")):
                error = f"entry {key}: expected an object with imagename and question"
                yield error_sample(self.name, f"mm_vet-{key}", "mm-vet.json", number, error)
                continue
            yield Sample(
                sample_id=f"mm_vet-{key}",
                benchmark=self.name,
                prompt=qa_prompt(item["question"], "", config.prompt),
                image_path=str(images / item["imagename"]),
                reference=item.get("answer"),
                metadata={"id": key, "capability": item.get("capability", [])},
            )


def write_results(table: Any, path: str | Path) -> Path:
    """Writes `{"<id>": "<answer>"}` for MM-Vet's grader; an error row answers ""."""
    results = {meta["id"]: answer_text(row) for row, meta in generation_rows(table) if "id" in meta}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return path
