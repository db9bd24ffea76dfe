"""POPE: polling-based object probing ("Is there a <object> in the image?", yes or no).

- Paper: Li et al., "Evaluating Object Hallucination in Large Vision-Language Models"
  (EMNLP 2023); question files as released in github.com/AoiDragon/POPE (`output/`).
- Splits (`benchmark.subset`): random, popular, adversarial (default random); the A-OKVQA and
  GQA variants as `aokvqa_random`, `gqa_popular`, ... (layouts below).
- Layouts (the first question file that exists is read):
  COCO: `<root>/coco_pope_<split>.json` or `<root>/coco/coco_pope_<split>.json` (LLaVA-1.5's
  eval bundle, `playground/data/eval/pope/`), JSONL lines `{"question_id", "image", "text",
  "label"}`; images in the first of `<root>/images/`, `<root>/val2014/`,
  `<root>/../coco/val2014/` that exists (the last is what `halleval data synth` writes).
  GQA / A-OKVQA: POPE's SEEM-built files as released under `output/seem/`:
  `<root>/<dataset>_pope_seem_<split>.json`, `<root>/<dataset>/...` or
  `<root>/seem/<dataset>/...`, a JSON array of the same objects (`<dataset>_pope_<split>.json`
  from one's own build also works); images in `<root>/images/` or `<root>/<dataset>/images/`
  (A-OKVQA's file names are COCO val2014 names, so the COCO folders are tried too).
- Prompt: the question + "\\nAnswer the question using a single word or phrase." (LLaVA-1.5's
  POPE evaluation, `llava_pope_test.jsonl`).
- Version 1.

`build_pope` makes the three splits from COCO instances the way POPE's `main.py` does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.api import BenchmarkError, Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.benchmarks._coco import CocoImage
from pipeline.benchmarks._common import (
    Line,
    error_sample,
    missing_keys,
    qa_prompt,
    read_entries,
    require,
    seeded_subset,
)
from pipeline.config import BenchmarkConfig

SPLITS = ("random", "popular", "adversarial")
INSTRUCTION = "Answer the question using a single word or phrase."
TEMPLATE = "Is there {article} {object} in the image?"
COCO_IMAGE_DIRS = ("images", "val2014", "../coco/val2014")
HINT = (
    "download the question files from github.com/AoiDragon/POPE (output/coco/, output/seem/), "
    "build them with `halleval data pope --coco COCO_ROOT --out DIR`, or run "
    "`halleval data synth --out DIR`"
)


def split_subset(subset: str) -> tuple[str, str]:
    """(dataset, split) of a subset: `random` is COCO's, `gqa_random` GQA's."""
    dataset, _, split = subset.rpartition("_")
    if split not in SPLITS:
        raise BenchmarkError(
            f"unknown POPE subset {subset!r}; use one of {', '.join(SPLITS)} "
            "(or <dataset>_<split>, e.g. gqa_random, aokvqa_popular)"
        )
    return dataset or "coco", split


def question_file_candidates(root: Path, subset: str) -> list[Path]:
    """Where each released layout keeps the subset's question file, in the order tried."""
    dataset, split = split_subset(subset)
    if dataset == "coco":
        return [root / f"coco_pope_{split}.json", root / "coco" / f"coco_pope_{split}.json"]
    seem = f"{dataset}_pope_seem_{split}.json"
    return [root / seem, root / dataset / seem, root / "seem" / dataset / seem,
            root / f"{dataset}_pope_{split}.json"]  # fmt: skip


def question_file(root: Path, subset: str) -> Path:
    """The first of `question_file_candidates` that exists.

    Raises:
        BenchmarkError: none exists (the message lists every path tried).
    """
    candidates = question_file_candidates(root, subset)
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(path) for path in candidates)
    raise BenchmarkError(f"POPE question file for subset {subset!r} not found (tried {tried}); {HINT}")


def find_image_dir(root: Path, dataset: str = "coco") -> Path:
    """The dataset's image folder: `images/` first, then the layouts POPE's users have."""
    names = COCO_IMAGE_DIRS if dataset == "coco" else ("images", f"{dataset}/images")
    if dataset == "aokvqa":  # its image names are COCO val2014 file names
        names = (*names, *COCO_IMAGE_DIRS[1:])
    for name in names:
        if (root / name).is_dir():
            return (root / name).resolve()
    tried = ", ".join(str(root / name) for name in names)
    raise BenchmarkError(
        f"no POPE image folder found (tried {tried}); put the {dataset.upper()} images "
        f"in {root / 'images'}"
    )


@BENCHMARKS.register("pope")
class Pope:
    """Yes/no object questions; POPE scores accuracy, precision, recall, F1 and yes-ratio."""

    name = "pope"
    version = "1"
    modality = "image"
    metrics = ("pope",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields every question of the subset's file (or a seeded `limit` of them) in file
        order; a line that cannot be used becomes a Sample with `error` set."""
        root = Path(config.root)
        subset = config.subset or "random"
        require(root, "POPE root", HINT)
        path = question_file(root, subset)
        images = find_image_dir(root, split_subset(subset)[0])
        lines: Iterable[Line] = read_entries(path, "POPE question file", HINT)
        if config.limit is not None:  # a seeded subset needs every line; the full file streams
            lines = seeded_subset(list(lines), config.limit, seed)
        seen: dict[str, int] = {}
        for line in lines:
            yield to_sample(line, path.name, subset, images, config.prompt, seen)


def to_sample(
    line: Line, source: str, subset: str, images: Path, override: str | None, seen: dict[str, int]
) -> Sample:
    """One question line as a Sample; `seen` maps question ids (as text) to their first line
    number, so a repeated id becomes an error row with its own sample id instead of a duplicate."""
    row = line.value or {}
    error = line.error
    question_id = row.get("question_id")
    if error is None and (absent := missing_keys(row, ("question_id", "image", "text", "label"))):
        error = f"{line.where}: missing {', '.join(absent)}"
    elif error is None and not isinstance(question_id, (int, str)):
        error = f"{line.where}: question_id {question_id!r} is not a number or string"
    elif error is None and row["label"] not in ("yes", "no"):
        error = f"{line.where}: label {row['label']!r} is not 'yes' or 'no'"
    elif error is None and str(question_id) in seen:
        # 1 and "1" name the same sample (pope-<split>-1): keyed by the text, the second is an error row
        error = f"{line.where}: question_id {question_id!r} repeats {line.kind} {seen[str(question_id)]}"
    if error is not None:
        sample_id = f"pope-{subset}-{line.kind}{line.number}"
        return error_sample("pope", sample_id, source, line.number, error)
    seen[str(question_id)] = line.number
    return Sample(
        sample_id=f"pope-{subset}-{question_id}",
        benchmark="pope",
        prompt=qa_prompt(row["text"], INSTRUCTION, override),
        image_path=str(images / row["image"]),
        reference=row["label"],
        metadata={"question_id": question_id, "label": row["label"]},
    )


def build_pope(
    images: Sequence[CocoImage], seed: int, n_images: int, n_objects: int = 3
) -> dict[str, list[dict[str, Any]]]:
    """Builds POPE's random, popular and adversarial question lists from annotated images.

    As POPE's `main.py`: sample `n_images` images with at least `n_objects` objects; per image,
    ask about its first `n_objects` objects (label yes) and, for each, one absent object
    (label no): a random one, the most frequent one over the sampled images (popular), or the
    one co-occurring most often with that object (adversarial); frequency and co-occurrence
    ties keep first-seen order. Question ids count from 0 and the positives of an image come
    before its negatives, as in the released files.

    Raises:
        BenchmarkError: fewer than `n_images` images have `n_objects` objects.
    """
    eligible = [image for image in images if len(image.objects) >= n_objects]
    if len(eligible) < n_images:
        raise BenchmarkError(
            f"only {len(eligible)} images have at least {n_objects} annotated objects; "
            f"ask for at most that many images"
        )
    sampled = random.Random(seed).sample(eligible, n_images)
    frequency = Counter(name for image in sampled for name in image.objects)
    co_occurrence: dict[str, Counter] = {}
    for image in sampled:
        for name in image.objects:
            co_occurrence.setdefault(name, Counter()).update(o for o in image.objects if o != name)
    ranked = {
        "popular": lambda positive: _by_count(frequency),
        "adversarial": lambda positive: _by_count(co_occurrence[positive]),
        "random": lambda positive: [],
    }
    splits = {}
    for split in SPLITS:
        # Each split draws from its own stream, so one split does not shift another.
        rng = random.Random(f"{seed}-{split}")
        questions: list[dict[str, Any]] = []
        for image in sampled:
            asked = list(image.objects[:n_objects])
            negatives = []
            for positive in image.objects[:n_objects]:
                absent = [
                    name for name in frequency if name not in asked and name not in image.objects
                ]
                if not absent:
                    raise BenchmarkError(
                        f"image {image.file_name}: no absent object left to ask about"
                    )
                preferred = [name for name in ranked[split](positive) if name in absent]
                negative = preferred[0] if preferred else rng.choice(absent)
                asked.append(negative)
                negatives.append(negative)
            for name, label in [(p, "yes") for p in image.objects[:n_objects]] + [
                (n, "no") for n in negatives
            ]:
                questions.append(
                    {
                        "question_id": len(questions),
                        "image": image.file_name,
                        "image_id": image.image_id,
                        "text": TEMPLATE.format(
                            article="an" if name[0] in "aeiou" else "a", object=name
                        ),
                        "label": label,
                    }
                )
        splits[split] = questions
    return splits


def _by_count(counts: Counter) -> list[str]:
    """Names by descending count; `sorted` is stable, so ties keep first-seen order."""
    return [name for name, _ in sorted(counts.items(), key=lambda item: item[1], reverse=True)]
