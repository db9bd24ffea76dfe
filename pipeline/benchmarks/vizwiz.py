"""VizWiz-VQA: questions from blind people about their own photos, many unanswerable.

- Paper: Gurari et al., "VizWiz Grand Challenge" (CVPR 2018); files as released on vizwiz.org.
- Subset: val (default; has answers) or test (no answers; for the EvalAI server).
- Layout: `<root>/Annotations/<split>.json` (a list of `{"image", "question", "answers",
  "answer_type", "answerable"}`) and the images in `<root>/<split>/`.
- Prompt: the question + "\\nWhen the provided information is insufficient, respond with
  'Unanswerable'.\\nAnswer the question using a single word or phrase." (LLaVA-1.5).
- Scored by metric `vizwiz` (val: VQA accuracy over the 10 human answers, EvalAI-normalised,
  as LLaVA's `m4c_evaluator.py`). Export: `write_submission(table, path)`, the
  `[{"image", "answer"}]` JSON that EvalAI takes, answers normalised by EvalAI's answer
  processor as LLaVA's `scripts/convert_vizwiz_for_submission.py` does.
- Metadata keeps all 10 human answers as released (`answers`), empty ones included.
- Version 1.
"""

from __future__ import annotations

import json
from collections import Counter
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
    require,
    seeded_subset,
)
from pipeline.config import BenchmarkConfig

INSTRUCTION = (
    "When the provided information is insufficient, respond with 'Unanswerable'.\n"
    "Answer the question using a single word or phrase."
)
HINT = "download Annotations.zip and the <split>.zip images from vizwiz.org into the root"


@BENCHMARKS.register("vizwiz")
class VizWiz:
    """VizWiz-VQA; scored by the VizWiz server from `write_submission`'s file."""

    name = "vizwiz"
    version = "1"
    modality = "image"
    metrics = ("vizwiz",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields every question of the split (or a seeded `limit`), in file order."""
        split = config.subset or "val"
        if split not in ("val", "test", "train"):
            raise BenchmarkError(f"unknown VizWiz subset {split!r}; use val or test")
        root = Path(config.root)
        items = read_json(root / "Annotations" / f"{split}.json", "VizWiz annotation file", HINT)
        images = require(root / split, "VizWiz image folder", HINT)
        source = f"{split}.json"
        seen: set[str] = set()
        for number, item in seeded_subset(list(enumerate(items, start=1)), config.limit, seed):
            if not isinstance(item, dict) or missing_keys(item, ("image", "question")):
                error = f"entry {number}: expected an object with image and question"
            elif item["image"] in seen:
                error = f"entry {number}: image {item['image']} repeats an earlier entry"
            else:
                error = None
            if error is not None:
                yield error_sample(self.name, f"vizwiz-entry{number}", source, number, error)
                continue
            seen.add(item["image"])
            answers = [a.get("answer") or "" for a in item.get("answers") or [] if isinstance(a, dict)]
            yield Sample(
                sample_id=f"vizwiz-{Path(item['image']).stem}",
                benchmark=self.name,
                prompt=qa_prompt(item["question"], INSTRUCTION, config.prompt),
                image_path=str(images / item["image"]),
                reference=Counter(a for a in answers if a).most_common(1)[0][0] if any(answers) else None,
                metadata={"image": item["image"], "question": item["question"], "answers": answers},
            )


def write_submission(table: Any, path: str | Path) -> Path:
    """Writes `[{"image", "answer"}]` for the VizWiz EvalAI server, as LLaVA's
    `convert_vizwiz_for_submission.py`: each answer through EvalAI's answer processor, in
    image order (the question file's order); an error row answers ""."""
    from eval.metrics.vizwiz import normalize_answer  # the scorer owns the normalisation

    rows = sorted(
        ({"image": meta["image"], "answer": normalize_answer(answer_text(row))}
         for row, meta in generation_rows(table) if "image" in meta),
        key=lambda entry: entry["image"],
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path
