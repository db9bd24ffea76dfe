"""The POPE reader on the synthetic question files and on broken copies of them."""

import json
import shutil
from functools import partial

import pytest
from conftest import read_benchmark

from pipeline.api import BenchmarkError
from pipeline.synth import write_synthetic

SUFFIX = "\nAnswer the question using a single word or phrase."


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_images=8)


read = partial(read_benchmark, "pope")


@pytest.mark.parametrize("subset", ["random", "popular", "adversarial"])
def test_every_question_once(synth, subset):
    lines = [json.loads(line) for line in (synth.pope_root / f"coco_pope_{subset}.json").open()]
    samples = read(synth.pope_root, subset=subset)
    assert [s.metadata for s in samples] == [
        {"question_id": q["question_id"], "label": q["label"]} for q in lines
    ]
    assert len({s.sample_id for s in samples}) == len(lines)
    for sample, question in zip(samples, lines, strict=True):
        assert sample.prompt == question["text"] + SUFFIX
        assert sample.reference == question["label"]
        assert sample.image_path == str(synth.coco_root.resolve() / "val2014" / question["image"])


def test_default_subset_is_random(synth):
    assert read(synth.pope_root) == read(synth.pope_root, subset="random")


def test_prompt_override_as_instruction_or_template(synth):
    assert read(synth.pope_root, prompt="Yes or no?")[0].prompt.endswith("image?\nYes or no?")
    assert read(synth.pope_root, prompt="Q: {question} A:")[0].prompt.startswith("Q: Is there a")


def test_limit_is_seeded(synth):
    first = [s.sample_id for s in read(synth.pope_root, limit=5, seed=1)]
    assert len(first) == 5 and first == [
        s.sample_id for s in read(synth.pope_root, limit=5, seed=1)
    ]


def test_unknown_subset_and_missing_file(synth, tmp_path):
    with pytest.raises(BenchmarkError, match="unknown POPE subset 'randum'"):
        read(synth.pope_root, subset="randum")
    with pytest.raises(BenchmarkError, match="subset 'gqa_random' not found .tried .*/gqa_pope_seem_random.json"):
        read(synth.pope_root, subset="gqa_random")


def test_missing_image_folder(synth, tmp_path):
    shutil.copy(synth.pope_root / "coco_pope_random.json", tmp_path)
    with pytest.raises(BenchmarkError, match="no POPE image folder"):
        read(tmp_path)


def test_bad_lines_become_error_samples(synth, tmp_path):
    root = tmp_path / "pope"
    shutil.copytree(synth.pope_root, root)
    shutil.copytree(synth.coco_root / "val2014", root / "images")
    good = (root / "coco_pope_random.json").read_text().splitlines()
    lines = (
        good[:2]
        + [
            "{not json",
            json.dumps({"question_id": 99, "image": "x.jpg"}),
            good[1],
            json.dumps({**json.loads(good[0]), "question_id": 7, "label": "maybe"}),
            "",
            "[1, 2]",
        ]
        + good[2:]
    )
    (root / "coco_pope_random.json").write_text("\n".join(lines) + "\n")
    samples = read(root)
    assert len(samples) == len(good) + 5  # blank line skipped, nothing else lost
    assert len({s.sample_id for s in samples}) == len(samples)
    errors = {s.sample_id: s.error for s in samples if s.error}
    assert {key: error.removeprefix("coco_pope_random.json ") for key, error in errors.items()} == {
        "pope-random-line3": "line 3: not valid JSON "
        "(Expecting property name enclosed in double quotes)",
        "pope-random-line4": "line 4: missing text, label",
        "pope-random-line5": "line 5: question_id 1 repeats line 2",
        "pope-random-line6": "line 6: label 'maybe' is not 'yes' or 'no'",
        "pope-random-line8": "line 8: expected a JSON object",
    }
    assert all(error.startswith("coco_pope_random.json line") for error in errors.values())
    assert samples[0].image_path.startswith(str(root / "images"))


def test_data_pope_command_builds_readable_splits(synth, tmp_path, capsys):
    from jobs.cli import main

    out = tmp_path / "pope"
    args = ["data", "pope", "--coco", str(synth.coco_root), "--out", str(out), "--n-images", "5"]
    assert main(args) == 0
    (out / "images").symlink_to(synth.coco_root / "val2014")
    for split in ("random", "popular", "adversarial"):
        samples = read(out, subset=split)
        assert len(samples) == 30 and all(s.error is None for s in samples)
    assert main([*args[:-1], "500"]) == 2
    assert "only 8 images have at least 3 annotated objects" in capsys.readouterr().err
