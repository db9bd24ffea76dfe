"""Video benchmarks: open-ended video QA (MSVD-QA, MSRVTT-QA, ActivityNet-QA) and Video-ChatGPT's
video text-generation benchmark (5 criteria, 3 question files).

Video QA (`msvd_qa`, `msrvtt_qa`, `activitynet_qa`)
- Papers: Xu et al. 2017 (MSVD-QA, MSRVTT-QA), Yu et al. 2019 (ActivityNet-QA); files as
  Video-ChatGPT and Video-LLaVA distribute them (`GPT_Zero_Shot_QA/<Dataset>_Zero_Shot_QA/`).
- Layout: `<root>/test_q.json` (`[{"video_name", "question_id", "question"}]`),
  `<root>/test_a.json` (`[{"question_id", "answer", "type"}]`), videos in the first of
  `<root>/videos/all/`, `<root>/all_test/`, `<root>/videos/` that exists, named
  `<video_name>.<ext>` or `v_<video_name>.<ext>` (ActivityNet), ext mp4/avi/mov/mkv/webm.
- Prompt: the question (Video-LLaVA's evaluation). Scored by an LLM judge (metric videoqa).
- Export: `write_answers(table, path)`, the JSONL `{"id", "question", "answer", "pred"}` that
  Video-ChatGPT's and Video-LLaVA's GPT evaluation scripts read.

Video text generation (`video_chatgpt`)
- Paper: Maaz et al., "Video-ChatGPT" (ACL 2024), its quantitative benchmark (VCGBench).
- Subsets: generic (correctness, detail orientation, contextual understanding), temporal,
  consistency; files `<root>/{generic,temporal,consistency}_qa.json`, videos in
  `<root>/Test_Videos/` (or `<root>/videos/`). A consistency item yields two samples (Q1, Q2).
- Export: `write_textgen_answers(table, path)`, the JSON list Video-ChatGPT's
  `evaluate_benchmark_*.py` scripts read (`pred`, or `pred1`/`pred2` for consistency).

All: version 1; metadata {"id", "question", "answer"} (+ "video_name", and "pair" for
consistency); a question whose video is missing still yields a sample, and the decoding stage
turns the missing file into an error row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
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
    write_jsonl,
)
from pipeline.config import BenchmarkConfig

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
QA_VIDEO_DIRS = ("videos/all", "all_test", "videos")  # most specific first
TEXTGEN_VIDEO_DIRS = ("Test_Videos", "videos")
TEXTGEN_SUBSETS = ("generic", "temporal", "consistency")


class VideoIndex:
    """Finds a benchmark's video by name in one folder, from a single directory listing.

    One listing instead of a stat per extension per question keeps a 100k-question file fast.
    """

    def __init__(self, root: Path, folders: Sequence[str], hint: str) -> None:
        for name in folders:
            if (root / name).is_dir():
                self.folder = (root / name).resolve()
                break
        else:
            tried = ", ".join(str(root / name) for name in folders)
            raise BenchmarkError(f"no video folder found (tried {tried}); {hint}")
        files = [p for p in self.folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS]
        # Least preferred extension first, so a preferred one (mp4) overwrites it.
        files.sort(key=lambda p: (-VIDEO_EXTENSIONS.index(p.suffix.lower()), p.name))
        self._by_stem = {path.stem: path for path in files}

    def path(self, video_name: str) -> str:
        """The video's path; a name with no file maps to `<folder>/<name>.mp4`, which the
        decoding stage reports as missing (an error row, not a lost sample)."""
        stem = Path(video_name).stem if Path(video_name).suffix in VIDEO_EXTENSIONS else video_name
        found = self._by_stem.get(stem) or self._by_stem.get(f"v_{stem}")
        return str(found or self.folder / f"{stem}.mp4")


class _VideoQA:
    """One reader for the three open-ended video QA sets; subclasses name a dataset."""

    version = "1"
    modality = "video"
    metrics = ("videoqa",)
    name: str
    hint: str

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields every question of test_q.json (or a seeded `limit`) with its answer."""
        root = require(Path(config.root), f"{self.name} root", self.hint)
        questions = read_json(root / "test_q.json", f"{self.name} question file", self.hint)
        answers = read_json(root / "test_a.json", f"{self.name} answer file", self.hint)
        by_id = {str(item.get("question_id")): item.get("answer") for item in answers}
        videos = VideoIndex(root, QA_VIDEO_DIRS, self.hint)
        seen: set[str] = set()
        chosen = seeded_subset(list(enumerate(questions, start=1)), config.limit, seed)
        for number, item in chosen:
            yield self._to_sample(number, item, by_id, videos, config.prompt, seen)

    def _to_sample(
        self, number: int, item: Any, answers: dict[str, Any], videos: VideoIndex,
        override: str | None, seen: set[str],
    ) -> Sample:  # fmt: skip
        entry = f"entry {number}"
        if not isinstance(item, dict):
            error = f"{entry}: expected a JSON object"
        elif absent := missing_keys(item, ("video_name", "question_id", "question")):
            error = f"{entry}: missing {', '.join(absent)}"
        elif str(item["question_id"]) in seen:
            error = f"{entry}: question_id {item['question_id']} repeats an earlier entry"
        elif answers.get(str(item["question_id"])) is None:
            error = f"{entry}: question_id {item['question_id']} has no answer in test_a.json"
        else:
            error = None
        if error is not None:
            return error_sample(
                self.name, f"{self.name}-entry{number}", "test_q.json", number, error
            )
        question_id = str(item["question_id"])
        seen.add(question_id)
        return Sample(
            sample_id=f"{self.name}-{question_id}",
            benchmark=self.name,
            prompt=qa_prompt(item["question"], "", override),
            video_path=videos.path(str(item["video_name"])),
            reference=str(answers[question_id]),
            metadata={"id": question_id, "question": item["question"],
                      "answer": str(answers[question_id]), "video_name": item["video_name"]},
        )  # fmt: skip


@BENCHMARKS.register("msvd_qa")
class MsvdQA(_VideoQA):
    name = "msvd_qa"
    hint = "unzip MSVD_Zero_Shot_QA (test_q.json, test_a.json, videos/) as the root"


@BENCHMARKS.register("msrvtt_qa")
class MsrvttQA(_VideoQA):
    name = "msrvtt_qa"
    hint = "unzip MSRVTT_Zero_Shot_QA (test_q.json, test_a.json, videos/all/) as the root"


@BENCHMARKS.register("activitynet_qa")
class ActivitynetQA(_VideoQA):
    name = "activitynet_qa"
    hint = "unzip Activitynet_Zero_Shot_QA (test_q.json, test_a.json, all_test/) as the root"


TEXTGEN_HINT = (
    "download Video-ChatGPT's benchmark (generic_qa.json, temporal_qa.json, consistency_qa.json "
    "and Test_Videos/) into the root, or run `halleval data synth --out DIR`"
)


@BENCHMARKS.register("video_chatgpt")
class VideoChatGPT:
    """Video-ChatGPT's text-generation benchmark, scored on 5 criteria by an LLM judge."""

    name = "video_chatgpt"
    version = "1"
    modality = "video"
    metrics = ()  # scored from write_textgen_answers by the 5-criteria judge

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields the subset's questions (default generic); two per consistency item."""
        subset = config.subset or "generic"
        if subset not in TEXTGEN_SUBSETS:
            raise BenchmarkError(
                f"unknown video_chatgpt subset {subset!r}; use {', '.join(TEXTGEN_SUBSETS)}"
            )
        root = require(Path(config.root), "video_chatgpt root", TEXTGEN_HINT)
        source = f"{subset}_qa.json"
        items = read_json(root / source, "Video-ChatGPT question file", TEXTGEN_HINT)
        videos = VideoIndex(root, TEXTGEN_VIDEO_DIRS, TEXTGEN_HINT)
        keys = ("Q1", "Q2") if subset == "consistency" else ("Q",)
        for number, item in seeded_subset(list(enumerate(items)), config.limit, seed):
            base = f"vcg-{subset}-{number}"
            required = (*keys, "A", "video_name")
            if not isinstance(item, dict) or missing_keys(item, required):
                error = f"entry {number}: expected an object with {', '.join(required)}"
                yield error_sample(self.name, base, source, number, error)
                continue
            for pair, key in enumerate(keys, start=1):
                metadata = {"id": number, "question": item[key], "answer": item["A"],
                            "video_name": item["video_name"]}  # fmt: skip
                if subset == "consistency":
                    metadata["pair"] = pair
                yield Sample(
                    sample_id=f"{base}-q{pair}" if subset == "consistency" else base,
                    benchmark=self.name,
                    prompt=qa_prompt(item[key], "", config.prompt),
                    video_path=videos.path(str(item["video_name"])),
                    reference=item["A"],
                    metadata=metadata,
                )


def write_answers(table: Any, path: str | Path) -> Path:
    """Writes a video-QA run as the JSONL `{"id", "question", "answer", "pred"}` that the
    Video-ChatGPT / Video-LLaVA GPT judges read; an error row gets an empty `pred`."""
    rows = [
        {"id": meta["id"], "question": meta["question"], "answer": meta["answer"],
         "pred": answer_text(row)}
        for row, meta in generation_rows(table)
        if "id" in meta
    ]  # fmt: skip
    write_jsonl(Path(path), rows)
    return Path(path)


def write_textgen_answers(table: Any, path: str | Path) -> Path:
    """Writes a video_chatgpt run as the JSON list Video-ChatGPT's evaluation scripts read:
    `{"video_name", "Q", "A", "pred"}`, or `{"video_name", "Q1", "Q2", "A", "pred1",
    "pred2"}` for the consistency subset (the two answers of an item are joined here)."""
    items: dict[int, dict[str, Any]] = {}
    for row, meta in generation_rows(table):
        if "id" not in meta:
            continue
        pred = answer_text(row)
        item = items.setdefault(meta["id"], {"video_name": meta["video_name"]})
        suffix = str(meta["pair"]) if "pair" in meta else ""
        item[f"Q{suffix}"] = meta["question"]
        item["A"] = meta["answer"]
        item[f"pred{suffix}"] = pred
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([items[key] for key in sorted(items)], indent=1), encoding="utf-8")
    return path
