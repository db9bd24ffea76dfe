"""The CHAIR reader on the synthetic COCO set and on broken copies of it."""

import shutil
from functools import partial

import pytest
from conftest import read_benchmark

from pipeline.api import BenchmarkError
from pipeline.synth import write_synthetic


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), n_images=10).coco_root


read = partial(read_benchmark, "chair")


def test_every_image_once_with_prompt_and_image_id(coco_root):
    samples = read(coco_root)
    assert len(samples) == 10 and len({s.sample_id for s in samples}) == 10
    for sample in samples:
        assert sample.prompt == "Please describe this image in detail."
        assert sample.image_path.endswith(f"COCO_val2014_{sample.metadata['image_id']:012d}.jpg")
        assert sample.error is None


def test_limit_is_a_seeded_subset(coco_root):
    def ids(seed):
        return [s.sample_id for s in read(coco_root, limit=4, seed=seed)]

    assert len(ids(0)) == 4 and ids(0) == ids(0)
    assert {tuple(ids(seed)) for seed in range(5)} != {tuple(ids(0))}
    assert set(ids(0)) <= {s.sample_id for s in read(coco_root)}


def test_prompt_override(coco_root):
    assert read(coco_root, prompt="Describe.")[0].prompt == "Describe."


@pytest.mark.parametrize(
    "missing",
    ["annotations/instances_val2014.json", "annotations/captions_val2014.json", "val2014"],
)
def test_missing_file_names_itself(coco_root, tmp_path, missing):
    broken = tmp_path / "coco"
    shutil.copytree(coco_root, broken)
    target = broken / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(BenchmarkError, match=missing.split("/")[-1]) as error:
        read(broken)
    assert "download" in str(error.value)


def test_malformed_instances_file_is_reported(coco_root, tmp_path):
    broken = tmp_path / "coco"
    shutil.copytree(coco_root, broken)
    (broken / "annotations/instances_val2014.json").write_text('{"images": [')
    with pytest.raises(BenchmarkError, match="instances_val2014.json is not valid JSON"):
        read(broken)
