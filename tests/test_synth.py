"""The synthetic benchmark: real COCO and POPE formats, POPE's construction, determinism."""

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from pipeline.benchmarks._coco import read_instances
from pipeline.benchmarks.pope import SPLITS, build_pope
from pipeline.synth import COCO_CATEGORIES, write_synthetic


def digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth"), seed=0, n_images=12)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    write_synthetic(tmp_path / "a", seed=3, n_images=6)
    write_synthetic(tmp_path / "b", seed=3, n_images=6)
    write_synthetic(tmp_path / "c", seed=4, n_images=6)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_coco_files_load_with_pycocotools(synth):
    coco = COCO(str(synth.coco_root / "annotations" / "instances_val2014.json"))
    assert len(coco.getImgIds()) == 12
    assert len(coco.getCatIds()) == 80
    assert coco.loadCats(90)[0] == {"supercategory": "indoor", "id": 90, "name": "toothbrush"}
    for image in coco.loadImgs(coco.getImgIds()):
        assert image["file_name"] == f"COCO_val2014_{image['id']:012d}.jpg"
        assert (synth.coco_root / "val2014" / image["file_name"]).is_file()
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert len(annotations) >= 3
        for annotation in annotations:
            x, y, w, h = annotation["bbox"]
            assert 0 <= x and x + w <= image["width"] and 0 <= y and y + h <= image["height"]
            assert annotation["area"] == w * h and annotation["iscrowd"] == 0


def test_the_80_categories_have_coco_ids():
    ids = [category_id for category_id, _, _ in COCO_CATEGORIES]
    assert len(ids) == 80 and len(set(ids)) == 80
    assert max(ids) == 90 and {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}.isdisjoint(ids)


def test_reference_captions_mention_the_annotated_objects(synth):
    captions = json.loads((synth.coco_root / "annotations" / "captions_val2014.json").read_text())
    by_image = Counter(caption["image_id"] for caption in captions["annotations"])
    assert set(by_image.values()) == {5}
    objects = {image.image_id: image.objects for image in read_instances(synth.coco_root)}
    for caption in captions["annotations"]:
        assert all(name in caption["caption"] for name in objects[caption["image_id"]])


def test_pope_files_follow_pope_construction(synth):
    images = {image.file_name: image for image in read_instances(synth.coco_root)}
    frequency = Counter(name for image in images.values() for name in image.objects)
    for split in SPLITS:
        lines = (synth.pope_root / f"coco_pope_{split}.json").read_text().splitlines()
        questions = [json.loads(line) for line in lines]
        assert [q["question_id"] for q in questions] == list(range(len(questions)))
        assert len(questions) == 6 * len(images)
        for start in range(0, len(questions), 6):
            block = questions[start : start + 6]
            image = images[block[0]["image"]]
            assert [q["label"] for q in block] == ["yes"] * 3 + ["no"] * 3
            asked = [re.fullmatch(r"Is there an? (.+) in the image\?", q["text"])[1] for q in block]
            assert asked[:3] == list(image.objects[:3])
            assert len(set(asked)) == 6 and not set(asked[3:]) & set(image.objects)
            if split == "popular":
                absent = [name for name, _ in frequency.most_common() if name not in image.objects]
                assert frequency[asked[3]] == frequency[absent[0]]


def test_pope_article_follows_pronunciation(synth):
    for line in (synth.pope_root / "coco_pope_random.json").open():
        article, name = re.fullmatch(
            r"Is there (an?) (.+) in the image\?", json.loads(line)["text"]
        ).groups()
        assert article == ("an" if name[0] in "aeiou" else "a")


def test_pope_builder_is_seeded(synth):
    images = read_instances(synth.coco_root)
    assert build_pope(images, 1, 8) == build_pope(images, 1, 8)
    assert build_pope(images, 1, 8)["random"] != build_pope(images, 2, 8)["random"]


def test_data_synth_command_writes_every_benchmark(tmp_path, capsys):
    from jobs.cli import main

    assert main(["data", "synth", "--out", str(tmp_path), "--seed", "2", "--images", "5"]) == 0
    printed = capsys.readouterr().out
    roots = write_synthetic(tmp_path / "again", seed=2, n_images=5).by_benchmark()
    for name, root in roots.items():
        assert f"{name} " in printed and (tmp_path / root.relative_to(tmp_path / "again")).is_dir()
