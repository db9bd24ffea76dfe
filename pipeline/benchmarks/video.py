"""Video benchmarks: open-ended video QA (MSVD-QA, MSRVTT-QA, ActivityNet-QA) and Video-ChatGPT's
video text-generation benchmark (5 criteria, 3 question files).

Video QA (`msvd_qa`, `msrvtt_qa`, `activitynet_qa`)
- Papers: Xu et al. 2017 (MSVD-QA, MSRVTT-QA), Yu et al. 2019 (ActivityNet-QA).
- Layouts: Video-LLaVA's `eval/GPT_Zero_Shot_QA/<Dataset>_Zero_Shot_QA/` folders (the files its
  `scripts/v1_5/eval/run_qa_*.sh` read), and for ActivityNet-QA also a checkout of the official
  repository MILVLG/activitynet-qa (`dataset/{train,val,test}_{q,a}.json`). Question file
  `[{"video_name", "question_id", "question"}]`, answer file `[{"question_id", "answer",
  "type"}]`, found in `<root>/` or `<root>/dataset/`; `subset` is the split (default test).
  Videos in the first of `<root>/videos/all/`, `<root>/all_test/`, `<root>/videos/` that
  exists, named `<video_name>.<ext>` or `v_<video_name>.<ext>` (ActivityNet), ext
  mp4/avi/mov/mkv/webm.
- Answers pair with questions by `question_id`; the reference inference scripts pair them by
  list position (`gt_answers[index]`), which agrees on the released files, whose two lists are
  in the same order.
- Prompt: the question (Video-LLaVA's evaluation). Scored by an LLM judge (metric videoqa).
- Export: `write_answers(table, path, layout)`: `video_chatgpt` (default) is the JSON list
  Video-ChatGPT's `evaluate_activitynet_qa.py` reads (`video_name`, `Q`, `A`, `pred`, plus
  `id`, `question`, `answer`); `video_llava` is the JSONL `{"id", "question", "answer",
  "pred"}` of Video-LLaVA's `merge.jsonl`, which its `eval_video_qa.py` reads.

Video text generation (`video_chatgpt`)
- Paper: Maaz et al., "Video-ChatGPT" (ACL 2024), its quantitative benchmark (VCGBench).
- Layouts: Video-LLaVA's `eval/Video_5_Benchmark/` (`Benchmarking_QA/{generic,temporal,
  consistency}_qa.json` + `Test_Videos/`), or the three files directly in the root.
  Items `{"Q", "A", "video_name"}`, consistency `{"Q1", "Q2", "A", "video_name"}`.
- Subsets: generic (correctness, detail orientation, contextual understanding), temporal,
  consistency (an item yields two samples, Q1 and Q2). Scored by metric videogen.
- Export: `write_textgen_answers(table, path)`, the JSON list Video-ChatGPT's
  `evaluate_benchmark_*.py` scripts read (`pred`, or `pred1`/`pred2` for consistency).

All: version 2 (metadata gained `entry`, the 1-based position in the question file, so exports
keep the file's order; video_chatgpt also `subset`, and its `id`
counts from 1 like `entry`); metadata {"id", "question",
"answer", "video_name", "entry"}; a question whose video is missing still yields a sample,
and the decoding stage turns the missing file into an error row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

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
QA_FILE_DIRS = (".", "dataset")  # Video-LLaVA's folder, then a MILVLG/activitynet-qa checkout
TEXTGEN_VIDEO_DIRS = ("Test_Videos", "videos")
TEXTGEN_FILE_DIRS = ("Benchmarking_QA", ".")  # Video-LLaVA's layout, then the files in the root
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


def find_file(root: Path, folders: Sequence[str], name: str, what: str, hint: str) -> Path:
    """The first `<root>/<folder>/<name>` that exists; else a BenchmarkError naming each place tried."""
    for folder in folders:
        if (root / folder / name).is_file():
            return root / folder / name
    tried = ", ".join(str(root / folder / name) for folder in folders)
    raise BenchmarkError(f"{what} {name} not found (tried {tried}); {hint}")


class _VideoQA:
    """One reader for the three open-ended video QA sets; subclasses name a dataset."""

    version = "2"
    modality = "video"
    metrics = ("videoqa",)
    name: str
    hint: str

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields every question of the split's question file (or a seeded `limit`) with its answer."""
        root = require(Path(config.root), f"{self.name} root", self.hint)
        split = config.subset or "test"
        question_file = find_file(root, QA_FILE_DIRS, f"{split}_q.json", f"{self.name} question file", self.hint)
        answer_file = find_file(root, QA_FILE_DIRS, f"{split}_a.json", f"{self.name} answer file", self.hint)
        questions = read_json(question_file, f"{self.name} question file", self.hint)
        answers = read_json(answer_file, f"{self.name} answer file", self.hint)
        for what, value, path in (("question", questions, question_file), ("answer", answers, answer_file)):
            if not isinstance(value, list):
                raise BenchmarkError(f"{self.name} {what} file {path} is not a JSON list; {self.hint}")
        by_id = {str(item.get("question_id")): item.get("answer") for item in answers if isinstance(item, dict)}
        videos = VideoIndex(root, QA_VIDEO_DIRS, self.hint)
        seen: set[str] = set()
        chosen = seeded_subset(list(enumerate(questions, start=1)), config.limit, seed)
        for number, item in chosen:
            yield self._to_sample(number, item, by_id, videos, config.prompt, seen, question_file.name)

    def _to_sample(
        self, number: int, item: Any, answers: dict[str, Any], videos: VideoIndex,
        override: str | None, seen: set[str], source: str,
    ) -> Sample:  # fmt: skip
        entry = f"entry {number}"
        if not isinstance(item, dict):
            error = f"{entry}: expected a JSON object"
        elif absent := missing_keys(item, ("video_name", "question_id", "question")):
            error = f"{entry}: missing {', '.join(absent)}"
        elif str(item["question_id"]) in seen:
            error = f"{entry}: question_id {item['question_id']} repeats an earlier entry"
        elif answers.get(str(item["question_id"])) is None:
            error = f"{entry}: question_id {item['question_id']} has no answer in {source.replace('_q.', '_a.')}"
        else:
            error = None
        if error is not None:
            return error_sample(self.name, f"{self.name}-entry{number}", source, number, error)
        question_id = str(item["question_id"])
        seen.add(question_id)
        return Sample(
            sample_id=f"{self.name}-{question_id}",
            benchmark=self.name,
            prompt=qa_prompt(item["question"], "", override),
            video_path=videos.path(str(item["video_name"])),
            reference=str(answers[question_id]),
            metadata={"id": item["question_id"], "question": item["question"],
                      "answer": str(answers[question_id]), "video_name": item["video_name"],
                      "entry": number},
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
    hint = (
        "use Activitynet_Zero_Shot_QA (test_q.json, test_a.json, all_test/) or a checkout of "
        "MILVLG/activitynet-qa (dataset/) with the videos in all_test/ as the root"
    )


TEXTGEN_HINT = (
    "use Video-LLaVA's Video_5_Benchmark folder (Benchmarking_QA/generic_qa.json, temporal_qa.json, "
    "consistency_qa.json and Test_Videos/) as the root, or run `halleval data synth --out DIR`"
)


@BENCHMARKS.register("video_chatgpt")
class VideoChatGPT:
    """Video-ChatGPT's text-generation benchmark, scored on 5 criteria by an LLM judge."""

    name = "video_chatgpt"
    version = "2"
    modality = "video"
    metrics = ("videogen",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields the subset's questions (default generic); two per consistency item."""
        subset = config.subset or "generic"
        if subset not in TEXTGEN_SUBSETS:
            raise BenchmarkError(
                f"unknown video_chatgpt subset {subset!r}; use {', '.join(TEXTGEN_SUBSETS)}"
            )
        root = require(Path(config.root), "video_chatgpt root", TEXTGEN_HINT)
        source = f"{subset}_qa.json"
        path = find_file(root, TEXTGEN_FILE_DIRS, source, "Video-ChatGPT question file", TEXTGEN_HINT)
        items = read_json(path, "Video-ChatGPT question file", TEXTGEN_HINT)
        if not isinstance(items, list):
            raise BenchmarkError(f"Video-ChatGPT question file {path} is not a JSON list; {TEXTGEN_HINT}")
        videos = VideoIndex(root, TEXTGEN_VIDEO_DIRS, TEXTGEN_HINT)
        questions = ("Q1", "Q2") if subset == "consistency" else ("Q",)
        for number, item in seeded_subset(list(enumerate(items, start=1)), config.limit, seed):
            base = f"vcg-{subset}-{number}"
            required = (*questions, "A", "video_name")
            if not isinstance(item, dict) or missing_keys(item, required):
                error = f"entry {number}: expected an object with {', '.join(required)}"
                yield error_sample(self.name, base, source, number, error)
                continue
            for pair, question in enumerate(questions, start=1):
                metadata = {"id": number, "question": item[question], "answer": item["A"],
                            "video_name": item["video_name"], "entry": number,
                            "subset": subset}  # fmt: skip
                if subset == "consistency":
                    metadata["pair"] = pair
                yield Sample(
                    sample_id=f"{base}-q{pair}" if subset == "consistency" else base,
                    benchmark=self.name,
                    prompt=qa_prompt(item[question], "", config.prompt),
                    video_path=videos.path(str(item["video_name"])),
                    reference=item["A"],
                    metadata=metadata,
                )


def _in_file_order(table: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A run's exportable rows (error rows of unparseable entries have no `id`), in the order of
    the benchmark's question file: Parquet parts follow the pipeline's work units, not the file."""
    rows = [(row, meta) for row, meta in generation_rows(table) if "id" in meta]
    return sorted(rows, key=lambda pair: (pair[1].get("entry", 0), pair[1].get("pair", 0)))


ExportLayout = Literal["video_chatgpt", "video_llava"]


def write_answers(table: Any, path: str | Path, layout: ExportLayout = "video_chatgpt") -> Path:
    """Writes a video-QA run for the reference GPT judges, in question-file order.

    Args:
        table: the run's generations table.
        path: the file to write.
        layout: `video_chatgpt`, the JSON list Video-ChatGPT's `evaluate_activitynet_qa.py`
            reads (`video_name`, `Q`, `A`, `pred`, plus `id`, `question`, `answer`), or
            `video_llava`, the JSONL `{"id", "question", "answer", "pred"}` that Video-LLaVA's
            `eval_video_qa.py` reads. An error row gets an empty `pred`.
    """
    records = []
    for row, meta in _in_file_order(table):
        record = {"id": meta["id"], "question": meta["question"], "answer": meta["answer"]}
        if layout == "video_chatgpt":
            record |= {"video_name": meta["video_name"], "Q": meta["question"], "A": meta["answer"]}
        records.append({**record, "pred": answer_text(row)})
    path = Path(path)
    if layout == "video_llava":
        write_jsonl(path, records)
    elif layout == "video_chatgpt":
        _write_json_list(path, records)
    else:
        raise ValueError(f"unknown export layout {layout!r}; use video_chatgpt or video_llava")
    return path


def write_textgen_answers(table: Any, path: str | Path) -> Path:
    """Writes a video_chatgpt run as the JSON list Video-ChatGPT's evaluation scripts read, in
    question-file order: `{"video_name", "Q", "A", "pred"}`, or `{"video_name", "Q1", "Q2",
    "A", "pred1", "pred2"}` for the consistency subset (the two answers of an item are joined
    here); each item also carries `subset`, so `halleval score videogen` knows its criteria."""
    items: dict[int, dict[str, Any]] = {}
    for row, meta in _in_file_order(table):
        item = items.setdefault(meta["id"], {"video_name": meta["video_name"]})
        suffix = str(meta["pair"]) if "pair" in meta else ""
        item[f"Q{suffix}"] = meta["question"]
        item["A"] = meta["answer"]
        item[f"pred{suffix}"] = answer_text(row)
        item["subset"] = meta.get("subset", "consistency" if suffix else "generic")
    order = ("video_name", "Q", "Q1", "Q2", "A", "pred", "pred1", "pred2", "subset")  # the reference files' order
    records = [{key: item[key] for key in order if key in item} for item in items.values()]
    return _write_json_list(Path(path), records)


def _write_json_list(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    return path
