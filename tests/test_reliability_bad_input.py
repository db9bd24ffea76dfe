"""Malformed inputs through the real command line: each gets a one-line error naming the input
(exit 2, no traceback) or an error row, and the rest of the run's results stay intact.

docs/reliability.md lists every case with what it gives.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import read_benchmark
from PIL import Image

from eval.api import ScoringContext, ScoringError
from eval.scoring import score_run
from jobs.cli import main
from pipeline.config import load_config
from pipeline.schema import GENERATIONS_DIR, read_generations, to_table
from pipeline.synth import write_synthetic
from test_visuals import hostile_jpeg2000, unsupported_dds


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith(f"halleval {command}: error: "), err
    return err


@dataclass
class Inputs:
    """The synthetic benchmark and a folder for broken files, shared by the CLI cases."""

    synth: object
    folder: Path

    def write(self, name: str, content: str | bytes) -> str:
        path = self.folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    def config(self, text: str) -> str:
        return self.write("run.yaml", f"benchmark: {{name: pope, root: {self.synth.pope_root}}}\n{text}")

    @property
    def questions(self) -> str:
        return str(self.synth.pope_root / "coco_pope_random.json")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    root = tmp_path_factory.mktemp("bad-input")
    return Inputs(write_synthetic(root / "synth", seed=0, n_images=2), root)


def _first_question(inputs: Inputs) -> str:
    return Path(inputs.questions).read_text().splitlines()[0] + "\n"


def _instances_without_categories(inputs: Inputs) -> str:
    root = inputs.folder / "coco-no-categories"
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    data = json.loads((inputs.synth.coco_root / "annotations" / "instances_val2014.json").read_text())
    del data["categories"]
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(data))
    return str(root)


def _case(name: str, argv: Callable[[Inputs], list[str]], expected: str, names_file: bool = True):
    """One malformed input: the argv that feeds it, what the message must say, and whether the
    message must name a file of the argv (a bad --set or --judge is named by `expected`)."""
    return pytest.param(argv, expected, names_file, id=name)


CLI_CASES = [
    _case("config: wrong type", lambda i: ["run", i.config("generation: {max_new_tokens: many}\n")],
     "'generation.max_new_tokens': Input should be a valid integer"),
    _case("config: negative K", lambda i: ["run", i.config("method: {name: sgrs}\n"), "--set", "method.top_k=-1"],
     "'method.top_k': Input should be greater than or equal to 1", names_file=False),
    _case("config: R above K", lambda i: ["run", i.config("method: {name: sgrs, top_k: 2, max_rejections: 3}\n")],
     "method.max_rejections (3) exceeds method.top_k (2)"),
    _case("config: misspelt key", lambda i: ["run", i.config("generaton: {batch_size: 2}\n")],
     "unknown key 'generaton'"),
    _case("config: unknown benchmark", lambda i: ["run", i.config(""), "--set", "benchmark.name=poppe"],
     "unknown benchmark 'poppe'; did you mean 'pope' or 'pope_hf'?", names_file=False),
    _case("config: unknown dtype", lambda i: ["run", i.config("model: {dtype: float64}\n")], "'model.dtype'"),
    _case("config: not YAML", lambda i: ["run", i.config("model: [\n")], "not valid YAML"),
    _case("config: file missing", lambda i: ["run", str(i.folder / "absent.yaml")], "does not exist"),
    _case("CLI: --set without =", lambda i: ["run", i.config(""), "--set", "seed"], "--set 'seed': expected key=value", names_file=False),
    _case("POPE answers: unknown question", lambda i: [
        "score", "pope", "--questions", i.questions,
        "--answers", i.write("unknown.jsonl", '{"question_id": 999, "text": "yes"}\n')],
     "answer for unknown question_id 999"),
    _case("POPE answers: malformed JSON line", lambda i: [
        "score", "pope", "--questions", i.questions,
        "--answers", i.write("cut.jsonl", '{"question_id": 0, "text": "yes"\n')],
     ":1: malformed JSON line"),
    _case("POPE answers: non-UTF-8 line", lambda i: [
        "score", "pope", "--questions", i.questions,
        "--answers", i.write("latin1.jsonl", b'{"question_id": 0, "text": "s\xed"}\n')],
     ":1: not UTF-8 text"),
    _case("POPE questions: duplicate id", lambda i: [
        "score", "pope", "--questions", i.write("dup.jsonl", _first_question(i) * 2),
        "--answers", i.write("one.jsonl", '{"question_id": 0, "text": "yes"}\n')],
     "record 2: duplicated question_id 0"),
    _case("CHAIR: empty caption file", lambda i: [
        "score", "chair", "--captions", i.write("empty.jsonl", ""),
        "--coco-annotations", str(i.synth.coco_root / "annotations")],
     "the file holds no captions"),
    _case("MME: result line with 3 fields", lambda i: [
        "score", "mme", "--results", str(Path(i.write("color.txt", "a.jpg\tIs it red?\tYes\n")).parent)],
     "color.txt:1: expected 4 tab-separated fields, got 3"),
    _case("judge: unknown name", lambda i: [
        "score", "videoqa", "--judge", "opnai:gpt-4",
        "--predictions", i.write("pred.jsonl", '{"id": 1, "question": "q", "answer": "a", "pred": "p"}\n')],
     "unknown judge 'opnai'; did you mean 'openai'?", names_file=False),
    _case("config: seed beyond int64", lambda i: ["run", i.config(""), "--set", f"seed={2**63}"],
     "'seed': seed 9223372036854775808 is outside 0 to 2**63-1", names_file=False),
    _case("COCO instances without categories", lambda i: [
        "data", "pope", "--coco", _instances_without_categories(i), "--out", str(i.folder / "pope-out")],
     "is not in the COCO instances format (no 'categories' section)"),
    _case("verify: not a run folder", lambda i: ["verify", str(i.folder / "no-run")], "is not a folder"),
]


@pytest.mark.parametrize(("argv", "expected", "names_file"), CLI_CASES)
def test_bad_input_is_a_one_line_error_naming_it(inputs, capsys, argv, expected, names_file):
    args = argv(inputs)
    assert main(args) == 2
    err = _one_line_error(capsys, args[0])
    assert expected in err, err
    if names_file:
        named = [a for a in args if a.startswith(str(inputs.folder))]
        assert any(name in err for name in named), f"names none of {named}: {err}"


def _huge_png(path: Path) -> None:
    """A PNG whose header claims 10000x9000 pixels (over the limit) without the pixel data."""
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    header = b"IHDR" + struct.pack(">II", 10_000, 9_000) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))


def _pope_folder(synth, root: Path) -> tuple[Path, dict[str, str]]:
    """A POPE folder whose question file mixes good lines with every broken kind of line.

    Returns:
        (the folder, sample_id → what its error must say; good samples map to "")
    """
    images = root / "images"
    images.mkdir(parents=True)
    good = sorted((synth.coco_root / "val2014").glob("*.jpg"))[:2]
    for path in good:
        shutil.copy(path, images / path.name)
    (images / "cut.jpg").write_bytes(good[0].read_bytes()[:300])
    (images / "text.jpg").write_text("this is not an image")
    _huge_png(images / "huge.png")
    hostile_jpeg2000(images / "j2k.jpg")
    unsupported_dds(images / "dds.jpg")

    def question(qid: int | str, image: str, label: str = "yes") -> bytes:
        return json.dumps({"question_id": qid, "image": image, "text": "Is there a dog in the image?",
                           "label": label}).encode() + b"\n"

    lines = [
        question(1, good[0].name), question(2, good[1].name),
        question(3, "cut.jpg"), question(4, "text.jpg"), question(5, "huge.png"), question(6, "absent.jpg"),
        question(1, good[1].name),  # duplicate id
        question(8, good[0].name, label="maybe"),
        b'{"question_id": 9, "image": "x.jpg"\n',  # cut short
        b'{"question_id": 10, "image": "' + good[0].name.encode() + b'", "text": "Is there a caf\xe9?", "label": "no"}\n',
        question(11, good[1].name, label="no"),
        question(12, "j2k.jpg"), question(13, "dds.jpg"),
        question("2", good[0].name),  # the id of line 2, as text: the same sample id
    ]
    (root / "coco_pope_random.json").write_bytes(b"".join(lines))
    errors = {
        "1": "", "2": "", "11": "",
        "3": "cut.jpg could not be decoded", "4": "text.jpg could not be decoded",
        "5": "huge.png is 10000x9000 pixels", "6": "absent.jpg does not exist",
        "line7": "line 7: question_id 1 repeats line 1", "line8": "line 8: label 'maybe'",
        "line9": "line 9: not valid JSON", "line10": "line 10: not UTF-8",
        "12": "j2k.jpg could not be decoded: MemoryError", "13": "dds.jpg could not be decoded: Unimplemented pixel",
        "line14": "line 14: question_id '2' repeats line 2",
    }
    return root, {f"pope-random-{key}": error for key, error in errors.items()}


@pytest.mark.slow
def test_broken_images_and_lines_become_error_rows_and_the_rest_is_scored(local_ray, synth, tmp_path):
    root, expected = _pope_folder(synth, tmp_path / "pope")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "benchmark": {"name": "pope", "root": str(root)},
        "generation": {"max_new_tokens": 2, "batch_size": 4},
        "output_dir": str(tmp_path / "runs"),
    }))
    assert main(["run", str(config)]) == 0
    run_dir = load_config(config).run_dir
    rows = read_generations(run_dir).to_pylist()
    assert len(rows) == len(expected)
    assert {row["sample_id"] for row in rows} == expected.keys()
    for row in rows:
        wanted = expected[row["sample_id"]]
        if wanted:
            assert wanted in (row["error"] or "") and "\n" not in row["error"], (row["sample_id"], row["error"])
            assert row["output_text"] is None
        else:
            assert row["error"] is None and row["output_text"] is not None, row
    scores = json.loads((run_dir / "scores.json").read_text())
    assert (scores["n_samples"], scores["n_errors"]) == (14, 11)
    assert scores["metrics"]["pope"]["n"] == 3
    assert main(["verify", str(run_dir)]) == 0


@pytest.mark.slow
def test_a_video_with_no_frames_is_an_error_row(local_ray, synth, tmp_path):
    root = tmp_path / "msvd"
    (root / "videos").mkdir(parents=True)
    shutil.copy(next((synth.msvd_qa_root / "videos").iterdir()), root / "videos" / "good.avi")
    # An AVI keeps its video stream with zero frames (an empty MP4 loses the stream).
    with av.open(str(root / "videos" / "empty.avi"), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    questions = [{"video_name": name, "question_id": name, "question": "What moves?"}
                 for name in ("good", "empty", "unanswered")]
    (root / "test_q.json").write_text(json.dumps(questions))
    (root / "test_a.json").write_text(json.dumps([{"question_id": q, "answer": "a ball"} for q in ("good", "empty")]))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "video_llava"},
        "benchmark": {"name": "msvd_qa", "root": str(root), "num_frames": 2},
        "generation": {"max_new_tokens": 2},
        "output_dir": str(tmp_path / "runs"),
    }))
    assert main(["run", str(config)]) == 0
    rows = {row["sample_id"]: row for row in read_generations(load_config(config).run_dir).to_pylist()}
    assert rows["msvd_qa-good"]["error"] is None and rows["msvd_qa-good"]["output_text"] is not None
    assert f"video {root / 'videos' / 'empty.avi'} has no frames" in rows["msvd_qa-empty"]["error"]
    assert "question_id unanswered has no answer in test_a.json" in rows["msvd_qa-entry3"]["error"]


def test_a_run_no_metric_can_score_fails_with_one_line_naming_run_and_metric(local_ray, synth, tmp_path):
    """Every POPE row an error (e.g. a question file whose every entry is broken): scoring runs
    as a Ray task, and its ScoringError reaches the user as one line, not the task's traceback."""
    rows = [{**s.to_row(), "run_id": "r", "model": "m", "method": "greedy", "error": "image missing"}
            for s in read_benchmark("pope", synth.pope_root)[:3]]
    (tmp_path / GENERATIONS_DIR).mkdir()
    pq.write_table(to_table(rows), tmp_path / GENERATIONS_DIR / "part-0.parquet")
    context = ScoringContext(benchmark_root=synth.pope_root, run_dir=tmp_path)
    with pytest.raises(ScoringError) as raised:
        score_run(context, ("pope",), {"run_id": "r"})
    assert str(raised.value) == f"{tmp_path}: pope: no answers to score"
    assert type(raised.value) is ScoringError  # not Ray's RayTaskError wrapper, whose text carries the traceback
