"""A small synthetic benchmark written in the real on-disk formats, for the demo and the tests.

`write_synthetic(out_dir)` draws COCO categories as coloured shapes on plain scenes and writes:

    <out>/coco/val2014/COCO_val2014_<id:012d>.jpg
    <out>/coco/annotations/instances_val2014.json     (images, annotations, the 80 categories)
    <out>/coco/annotations/captions_val2014.json      (5 reference captions per image)
    <out>/pope/coco_pope_{random,popular,adversarial}.json   (built from the instances as POPE does)

Objects are drawn from a few scenes (street, kitchen, ...), so some categories are frequent and
some co-occur, which is what POPE's popular and adversarial splits need. The same seed writes
the same bytes.
"""

from __future__ import annotations

import colorsys
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from pipeline.benchmarks._coco import (
    SPLIT,
    captions_path,
    image_dir,
    instances_path,
    read_instances,
)
from pipeline.benchmarks._common import write_jsonl
from pipeline.benchmarks.pope import build_pope

# The 80 COCO detection categories: (id, name, supercategory), ids as in the released files.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"),
    (2, "bicycle", "vehicle"),
    (3, "car", "vehicle"),
    (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"),
    (6, "bus", "vehicle"),
    (7, "train", "vehicle"),
    (8, "truck", "vehicle"),
    (9, "boat", "vehicle"),
    (10, "traffic light", "outdoor"),
    (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"),
    (14, "parking meter", "outdoor"),
    (15, "bench", "outdoor"),
    (16, "bird", "animal"),
    (17, "cat", "animal"),
    (18, "dog", "animal"),
    (19, "horse", "animal"),
    (20, "sheep", "animal"),
    (21, "cow", "animal"),
    (22, "elephant", "animal"),
    (23, "bear", "animal"),
    (24, "zebra", "animal"),
    (25, "giraffe", "animal"),
    (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"),
    (31, "handbag", "accessory"),
    (32, "tie", "accessory"),
    (33, "suitcase", "accessory"),
    (34, "frisbee", "sports"),
    (35, "skis", "sports"),
    (36, "snowboard", "sports"),
    (37, "sports ball", "sports"),
    (38, "kite", "sports"),
    (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"),
    (41, "skateboard", "sports"),
    (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"),
    (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"),
    (47, "cup", "kitchen"),
    (48, "fork", "kitchen"),
    (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"),
    (51, "bowl", "kitchen"),
    (52, "banana", "food"),
    (53, "apple", "food"),
    (54, "sandwich", "food"),
    (55, "orange", "food"),
    (56, "broccoli", "food"),
    (57, "carrot", "food"),
    (58, "hot dog", "food"),
    (59, "pizza", "food"),
    (60, "donut", "food"),
    (61, "cake", "food"),
    (62, "chair", "furniture"),
    (63, "couch", "furniture"),
    (64, "potted plant", "furniture"),
    (65, "bed", "furniture"),
    (67, "dining table", "furniture"),
    (70, "toilet", "furniture"),
    (72, "tv", "electronic"),
    (73, "laptop", "electronic"),
    (74, "mouse", "electronic"),
    (75, "remote", "electronic"),
    (76, "keyboard", "electronic"),
    (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"),
    (79, "oven", "appliance"),
    (80, "toaster", "appliance"),
    (81, "sink", "appliance"),
    (82, "refrigerator", "appliance"),
    (84, "book", "indoor"),
    (85, "clock", "indoor"),
    (86, "vase", "indoor"),
    (87, "scissors", "indoor"),
    (88, "teddy bear", "indoor"),
    (89, "hair drier", "indoor"),
    (90, "toothbrush", "indoor"),
)
CATEGORY_IDS = {name: category_id for category_id, name, _ in COCO_CATEGORIES}

# Scene -> (background colour, objects from most to least likely). "person" and "chair" sit in
# two scenes each so that they are the popular objects.
SCENES: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "street": ((150, 150, 150), ("person", "car", "traffic light", "bicycle", "bus", "stop sign")),
    "kitchen": ((235, 225, 200), ("dining table", "cup", "bowl", "chair", "knife", "bottle")),
    "living room": ((210, 190, 160), ("couch", "tv", "chair", "potted plant", "book", "cat")),
    "park": ((120, 190, 110), ("person", "dog", "bench", "frisbee", "kite", "bird")),
}
WIDTH, HEIGHT = 224, 168
JPEG_QUALITY = 90
CAPTION_TEMPLATES = (
    "A {scene} scene with {objects}.",
    "There is {objects} in this picture.",
    "A photo showing {objects}.",
    "{first} in a {scene} together with {rest}.",
    "An image of a {scene} containing {objects}.",
)


@dataclass(frozen=True)
class SyntheticBenchmark:
    """Where `write_synthetic` put each benchmark; each path is a `benchmark.root`."""

    coco_root: Path  # chair
    pope_root: Path  # pope


def write_synthetic(out_dir: str | Path, seed: int = 0, n_images: int = 16) -> SyntheticBenchmark:
    """Writes the synthetic benchmark under `out_dir` (created if needed).

    Args:
        out_dir: output folder; existing files of the same names are overwritten.
        seed: decides every image, object, caption and POPE question.
        n_images: COCO images to draw (each holds 3 to 5 objects).

    Returns:
        The benchmark roots, to use as `benchmark.root` in a run config.
    """
    out = Path(out_dir)
    rng = random.Random(seed)
    coco_root = out / "coco"
    _write_coco(coco_root, rng, n_images)
    pope_root = out / "pope"
    images = read_instances(coco_root)
    splits = build_pope(images, seed, n_images=len(images))
    for split, questions in splits.items():
        write_jsonl(pope_root / f"coco_pope_{split}.json", questions)
    return SyntheticBenchmark(coco_root=coco_root, pope_root=pope_root)


def _write_coco(root: Path, rng: random.Random, n_images: int) -> None:
    image_dir(root).mkdir(parents=True, exist_ok=True)
    info = {
        "description": "halleval synthetic benchmark in COCO format",
        "version": "1.0",
        "year": 2014,
        "contributor": "halleval",
        "date_created": "2014-01-01",
    }
    licenses = [
        {"url": "https://www.apache.org/licenses/LICENSE-2.0", "id": 1, "name": "Apache-2.0"}
    ]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    captions: list[dict[str, Any]] = []
    # Real val2014 ids are below 581930; random ones make file names look like the real set.
    for image_id in sorted(rng.sample(range(1, 581930), n_images)):
        scene = rng.choice(sorted(SCENES))
        background, likely = SCENES[scene]
        names = rng.sample(likely[:5], rng.randint(3, 4)) + (
            [likely[5]] if rng.random() < 0.3 else []
        )
        file_name = f"COCO_{SPLIT}_{image_id:012d}.jpg"
        picture = Image.new("RGB", (WIDTH, HEIGHT), background)
        draw = ImageDraw.Draw(picture)
        for name in names:
            box = _draw_object(draw, name, rng)
            annotations.append(_annotation(len(annotations) + 1, image_id, CATEGORY_IDS[name], box))
        picture.save(image_dir(root) / file_name, format="JPEG", quality=JPEG_QUALITY)
        images.append(
            {
                "license": 1,
                "file_name": file_name,
                "coco_url": f"http://images.cocodataset.org/{SPLIT}/{file_name}",
                "height": HEIGHT,
                "width": WIDTH,
                "date_captured": "2014-01-01 00:00:00",
                "flickr_url": "",
                "id": image_id,
            }
        )
        for template in CAPTION_TEMPLATES:
            captions.append(
                {
                    "image_id": image_id,
                    "id": len(captions) + 1,
                    "caption": _caption(template, scene, names),
                }
            )
    categories = [
        {"supercategory": supercategory, "id": category_id, "name": name}
        for category_id, name, supercategory in COCO_CATEGORIES
    ]
    _write_json(
        instances_path(root),
        {
            "info": info,
            "images": images,
            "licenses": licenses,
            "annotations": annotations,
            "categories": categories,
        },
    )
    _write_json(
        captions_path(root),
        {"info": info, "images": images, "licenses": licenses, "annotations": captions},
    )


def _colour(name: str) -> tuple[int, int, int]:
    """A fixed saturated colour per category, spread around the hue circle by category id."""
    red, green, blue = colorsys.hsv_to_rgb((CATEGORY_IDS[name] * 0.137) % 1.0, 0.8, 0.9)
    return int(red * 255), int(green * 255), int(blue * 255)


def _draw_object(
    draw: ImageDraw.ImageDraw, name: str, rng: random.Random
) -> tuple[int, int, int, int]:
    """Draws one object as a shape (kind fixed per category) and returns its box x, y, w, h."""
    w, h = rng.randint(30, 80), rng.randint(30, 70)
    x, y = rng.randint(0, WIDTH - w), rng.randint(0, HEIGHT - h)
    corners = (x, y, x + w - 1, y + h - 1)
    kind = CATEGORY_IDS[name] % 3
    if kind == 0:
        draw.rectangle(corners, fill=_colour(name), outline=(0, 0, 0))
    elif kind == 1:
        draw.ellipse(corners, fill=_colour(name), outline=(0, 0, 0))
    else:
        draw.polygon(
            [(x + w // 2, y), (x, y + h - 1), (x + w - 1, y + h - 1)],
            fill=_colour(name),
            outline=(0, 0, 0),
        )
    return x, y, w, h


def _annotation(
    annotation_id: int, image_id: int, category_id: int, box: tuple[int, int, int, int]
) -> dict[str, Any]:
    x, y, w, h = box
    return {
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
        "area": float(w * h),
        "iscrowd": 0,
        "image_id": image_id,
        "bbox": [float(x), float(y), float(w), float(h)],
        "category_id": category_id,
        "id": annotation_id,
    }


def _with_article(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _caption(template: str, scene: str, names: list[str]) -> str:
    phrases = [_with_article(name) for name in names]
    listed = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    rest = ", ".join(phrases[1:-1]) + " and " + phrases[-1] if len(phrases) > 2 else phrases[-1]
    text = template.format(scene=scene, objects=listed, first=phrases[0], rest=rest)
    return text[0].upper() + text[1:]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
