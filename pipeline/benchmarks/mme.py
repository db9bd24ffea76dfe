"""MME: 14 yes/no perception and cognition tasks, two questions per image.

- Paper: Fu et al., "MME: A Comprehensive Evaluation Benchmark for Multimodal Large Language
  Models" (2023); data as released (`MME_Benchmark_release_version/`).
- Layout: `<root>/<task>/` per task, `root` being `MME_Benchmark_release_version/` or the
  folder holding it beside `eval_tool/` (LLaVA-1.5's `playground/data/eval/MME/`). artwork, celebrity, landmark, posters and scene keep
  `images/<name>.jpg` and `questions_answers_YN/<name>.txt`; the other tasks keep `<name>.jpg`
  (or .png) and `<name>.txt` side by side. Each txt has two lines `question<TAB>Yes|No`.
- Subset: a task name, `perception`, `cognition`, or a comma-separated list; default all 14.
  `limit` counts images, so both questions of an image stay together (acc+ needs the pair).
- Prompt: the question without its " Please answer yes or no." + "\\nAnswer the question using
  a single word or phrase.", as LLaVA-1.5 (`llava_mme.jsonl`) and lmms-eval build it; a
  `benchmark.prompt` override applies to the question as released (suffix kept).
- Version 2 (version 1 kept " Please answer yes or no." before the instruction).

`write_eval_tool_results` writes a run's answers in the layout of MME's `eval_tool`
(`<task>.txt`, lines `image<TAB>question<TAB>gt<TAB>response`), so MME's own
`calculation.py` can score them too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipeline.api import BenchmarkError, Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.benchmarks._common import (
    answer_text,
    error_sample,
    find_media,
    generation_rows,
    qa_prompt,
    require,
    seeded_subset,
)
from pipeline.config import BenchmarkConfig

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene",
              "landmark", "artwork", "OCR")  # fmt: skip
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SPLIT_FOLDER_TASKS = ("artwork", "celebrity", "landmark", "posters", "scene")
INSTRUCTION = "Answer the question using a single word or phrase."
YES_NO_SUFFIX = "Please answer yes or no."  # replaced by INSTRUCTION in the default prompt
RELEASE_FOLDER = "MME_Benchmark_release_version"
IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg")
HINT = "download MME_Benchmark_release_version from the MME authors and unzip it as the root"


def task_folders(root: Path, task: str) -> tuple[Path, Path]:
    """(image folder, question folder) of a task, in whichever of the two layouts it uses."""
    folder = root / task
    if (folder / "images").is_dir():
        return folder / "images", folder / "questions_answers_YN"
    return folder, folder


def release_root(root: Path) -> Path:
    """The release folder: `root` itself, or `root/MME_Benchmark_release_version` (LLaVA's MME/)."""
    nested = root / RELEASE_FOLDER
    return nested if nested.is_dir() else root


def mme_prompt(question: str, override: str | None) -> str:
    """LLaVA-1.5's MME prompt: the yes/no suffix removed, the short-answer instruction added."""
    if override is not None:
        return qa_prompt(question, INSTRUCTION, override)
    return qa_prompt(question.replace(YES_NO_SUFFIX, "").strip(), INSTRUCTION, None)


def select_tasks(subset: str | None) -> tuple[str, ...]:
    if subset is None:
        return PERCEPTION + COGNITION
    groups = {"perception": PERCEPTION, "cognition": COGNITION}
    tasks: list[str] = []
    for name in subset.split(","):
        name = name.strip()
        if name not in groups and name not in PERCEPTION + COGNITION:
            raise BenchmarkError(
                f"unknown MME subset {name!r}; use perception, cognition or a task: "
                + ", ".join(PERCEPTION + COGNITION)
            )
        tasks.extend(groups.get(name, (name,)))
    return tuple(dict.fromkeys(tasks))


@dataclass(frozen=True)
class _ImageQuestions:
    task: str
    question_file: Path
    image_folder: Path


@BENCHMARKS.register("mme")
class Mme:
    """MME's yes/no questions; scored per task as acc and acc+ (0-200 per task)."""

    name = "mme"
    version = "2"
    modality = "image"
    metrics = ("mme",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields both questions of every image, task by task, images sorted by file name."""
        root = release_root(require(Path(config.root), "MME root", HINT))
        groups = []
        for task in select_tasks(config.subset):
            images, questions = task_folders(root, task)
            require(questions, f"MME task folder for {task!r}", HINT)
            groups += [
                _ImageQuestions(task, path, images) for path in sorted(questions.glob("*.txt"))
            ]
        for group in seeded_subset(groups, config.limit, seed):
            yield from _read_pair(group, config.prompt)


def _read_pair(group: _ImageQuestions, override: str | None) -> Iterator[Sample]:
    stem = group.question_file.stem
    source = f"{group.task}/{group.question_file.name}"
    image = find_media(group.image_folder, stem, IMAGE_EXTENSIONS)
    text = group.question_file.read_text(encoding="utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        sample_id = f"mme-{group.task}-{stem}-{number}"
        question, tab, answer = line.strip().partition("\t")
        if image is None:
            error = f"line {number}: no image {stem}.jpg/.png in {group.image_folder}"
        elif not tab or answer.strip() not in ("Yes", "No"):
            error = f"line {number}: expected 'question<TAB>Yes' or 'question<TAB>No'"
        else:
            error = None
        if error is not None:
            yield error_sample("mme", sample_id, source, number, error)
            continue
        yield Sample(
            sample_id=sample_id,
            benchmark="mme",
            prompt=mme_prompt(question, override),
            image_path=str(image),
            reference=answer.strip(),
            metadata={
                "task": group.task,
                "image": image.name,
                "question": question,
                "gt": answer.strip(),
            },
        )


def write_eval_tool_results(table: pa.Table, out_dir: str | Path) -> list[Path]:
    """Writes a run's MME answers as MME's eval_tool reads them: one `<task>.txt` per task.

    Lines are `image<TAB>question<TAB>gt<TAB>response`, both questions of an image on adjacent
    lines (calculation.py reads them in pairs). Tabs and newlines in a response become spaces;
    a row with `error` set is written with an empty response, so it counts as wrong, not absent.

    Args:
        table: generations (GENERATION_SCHEMA) of an MME run.
        out_dir: folder for the task files (created if needed).

    Returns:
        The files written, sorted.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[tuple[str, str]]] = {}
    for row, metadata in generation_rows(table):
        if "task" not in metadata:
            continue  # an unparsable question line: nothing to pair it with
        response = " ".join(answer_text(row).split())
        fields = (metadata["image"], metadata["question"], metadata["gt"], response)
        lines.setdefault(metadata["task"], []).append((row["sample_id"], "\t".join(fields)))
    written = []
    for task, entries in sorted(lines.items()):
        path = out / f"{task}.txt"
        path.write_text("".join(f"{line}\n" for _, line in sorted(entries)), encoding="utf-8")
        written.append(path)
    return written
