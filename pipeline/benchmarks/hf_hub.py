"""POPE and MME in the Hugging Face hub format that lmms-eval reads (`lmms-lab/POPE`,
`lmms-lab/MME`): Parquet files with the images embedded, read through `datasets`.

- `pope_hf`: lmms-lab/POPE's columns `id, question_id, question, answer, image_source, image,
  category` (category: adversarial, popular or random). `benchmark.subset` picks a category;
  the default is all three, as lmms-eval's `pope` task scores the 9,000 questions together.
  Scored by the `pope` metric.
- `mme_hf`: lmms-lab/MME's columns `question_id, image, question, answer, category`, where
  `question_id` is the image's path (its two questions share it) and `category` the task.
  `benchmark.subset` is a task, `perception`, `cognition` or a comma-separated list, as for
  `mme`; `limit` counts images so both questions stay together. Scored by the `mme` metric.
  An answer other than Yes/No stops the reader (MME pairs questions, so a row cannot be
  dropped); POPE keeps such a row as an error row.
- Root: a local folder holding the dataset's Parquet files (anywhere below it, e.g. a
  `huggingface-cli download lmms-lab/POPE --repo-type dataset --local-dir DIR` copy), or a
  hub id (`lmms-lab/POPE`), which `datasets` downloads or takes from its cache.
- Images: the readers yield paths, so each embedded image is written once, as its own bytes
  (no re-encoding), to `$HALLEVAL_CACHE/hf_images/<dataset fingerprint>/` (default
  `~/.cache/halleval`); the inference actors decode them as any image file.
- Prompts: the question + "\\nAnswer the question using a single word or phrase.", as the
  folder readers `pope` and `mme` (LLaVA-1.5's evaluation), so both formats of the same data
  give the same prompts.
- Version 1.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.api import BenchmarkError, Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.benchmarks._common import qa_prompt, seeded_subset
from pipeline.benchmarks.mme import INSTRUCTION as MME_INSTRUCTION
from pipeline.benchmarks.mme import select_tasks
from pipeline.benchmarks.pope import INSTRUCTION as POPE_INSTRUCTION
from pipeline.benchmarks.pope import SPLITS as POPE_CATEGORIES
from pipeline.config import BenchmarkConfig

POPE_COLUMNS = ("id", "question_id", "question", "answer", "image", "category")
MME_COLUMNS = ("question_id", "image", "question", "answer", "category")
_IMAGE_SUFFIXES = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif", b"RIFF": ".webp"}


def load_hub_table(root: str, columns: tuple[str, ...], name: str):
    """The dataset's test split as a `datasets.Dataset` with undecoded images.

    Raises:
        BenchmarkError: a folder without Parquet files, a missing column, or a hub id that
            cannot be loaded (offline, unknown), naming the root and the fix.
    """
    import datasets

    datasets.disable_progress_bars()  # the reader runs before halleval's own progress; keep the console quiet
    path = Path(root)
    try:
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*.parquet"))
            if not files:
                raise BenchmarkError(f"{root}: no .parquet files for {name}; download the dataset's "
                                     "Parquet files (e.g. huggingface-cli download) into this folder")
            table = datasets.load_dataset("parquet", data_files={"test": files}, split="test")
        elif re.fullmatch(r"[\w.-]+/[\w.-]+", root) and not path.exists():
            table = datasets.load_dataset(root, split="test")
        else:
            raise BenchmarkError(f"{root}: no such folder; give a folder of {name} Parquet files or a hub id")
    except BenchmarkError:
        raise
    except Exception as error:  # datasets raises many kinds (offline, missing config, bad file)
        raise BenchmarkError(f"{root}: cannot read {name} through datasets: {type(error).__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else ''}") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise BenchmarkError(f"{root}: not the {name} schema; missing column(s) {', '.join(missing)} "
                             f"(has {', '.join(table.column_names)})")
    return table.cast_column("image", datasets.Image(decode=False))


def image_folder(table) -> Path:
    """Where this dataset's embedded images are written (one folder per dataset content)."""
    root = Path(os.environ.get("HALLEVAL_CACHE") or Path.home() / ".cache" / "halleval")
    folder = root / "hf_images" / hashlib.sha256(table._fingerprint.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_image(folder: Path, key: str, image: dict[str, Any]) -> Path:
    """Writes an embedded image's bytes to `folder` once (atomically); returns its path."""
    data = image.get("bytes")
    if data is None and image.get("path") and Path(image["path"]).is_file():
        return Path(image["path"])
    if not data:
        raise BenchmarkError(f"image {key!r} has no embedded bytes")
    suffix = next((s for magic, s in _IMAGE_SUFFIXES.items() if data.startswith(magic)), ".img")
    path = folder / (hashlib.sha256(key.encode()).hexdigest()[:24] + suffix)
    if not path.is_file():
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)
    return path


@BENCHMARKS.register("pope_hf")
class PopeHub:
    """POPE from lmms-lab/POPE's Parquet (embedded images), read through `datasets`."""

    name = "pope_hf"
    version = "1"
    modality = "image"
    metrics = ("pope",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields the questions of the chosen categories in file order (or a seeded `limit`)."""
        if config.subset is not None and config.subset not in POPE_CATEGORIES:
            raise BenchmarkError(f"unknown pope_hf subset {config.subset!r}; use one of {', '.join(POPE_CATEGORIES)}")
        table = load_hub_table(config.root, POPE_COLUMNS, "lmms-lab/POPE")
        categories = table["category"]
        rows = [i for i, category in enumerate(categories) if config.subset in (None, category)]
        folder = image_folder(table)
        for index in seeded_subset(rows, config.limit, seed):
            row = table[index]
            label = str(row["answer"]).strip().lower()
            question_id = f"{row['category']}-{row['question_id']}"
            sample_id = f"pope_hf-{row['category']}-{row['id']}"
            if label not in ("yes", "no"):
                yield Sample(sample_id=sample_id, benchmark="pope_hf", prompt="",
                             metadata={"question_id": question_id},
                             error=f"{config.root}: row {index}: answer {row['answer']!r} is not yes or no")
                continue
            yield Sample(
                sample_id=sample_id,
                benchmark="pope_hf",
                prompt=qa_prompt(str(row["question"]).strip(), POPE_INSTRUCTION, config.prompt),
                image_path=str(write_image(folder, f"{row['id']}", row["image"])),
                reference=label,
                metadata={"question_id": question_id, "label": label, "category": row["category"],
                          "image_source": row.get("image_source")},
            )


@BENCHMARKS.register("mme_hf")
class MmeHub:
    """MME from lmms-lab/MME's Parquet (embedded images), read through `datasets`."""

    name = "mme_hf"
    version = "1"
    modality = "image"
    metrics = ("mme",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields both questions of each image of the chosen tasks (`limit` counts images)."""
        tasks = select_tasks(config.subset)
        table = load_hub_table(config.root, MME_COLUMNS, "lmms-lab/MME")
        images: dict[tuple[str, str], list[int]] = {}
        for index, (task, question_id) in enumerate(zip(table["category"], table["question_id"])):
            if task in tasks:
                images.setdefault((task, question_id), []).append(index)
        folder = image_folder(table)
        for (task, question_id), indices in seeded_subset(list(images.items()), config.limit, seed):
            for number, index in enumerate(indices):
                row = table[index]
                sample_id = f"mme_hf-{task}-{question_id}-{number}"
                gt = str(row["answer"]).strip()
                if gt.lower() not in ("yes", "no"):  # MME's calculation.py asserts here too
                    raise BenchmarkError(f"{config.root}: row {index} ({task}/{question_id}): answer {gt!r} "
                                         "is not Yes or No")
                yield Sample(
                    sample_id=sample_id,
                    benchmark="mme_hf",
                    prompt=qa_prompt(str(row["question"]).strip(), MME_INSTRUCTION, config.prompt),
                    image_path=str(write_image(folder, f"{task}/{question_id}", row["image"])),
                    reference=gt,
                    metadata={"task": task, "image": question_id, "question": row["question"], "gt": gt},
                )
