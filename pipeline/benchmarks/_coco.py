"""The COCO 2014 layout shared by CHAIR and by the POPE builder.

A COCO root is the folder that holds `val2014/` (the images) and `annotations/`
(`instances_val2014.json`, `captions_val2014.json`), as the official zips unpack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.api import BenchmarkError
from pipeline.benchmarks._common import read_json, require

SPLIT = "val2014"
DOWNLOAD_HINT = (
    "download val2014.zip and annotations_trainval2014.zip from cocodataset.org and unzip both "
    "into the benchmark root (or run `halleval data synth --out DIR` for a small synthetic set)"
)


def instances_path(root: Path) -> Path:
    return root / "annotations" / f"instances_{SPLIT}.json"


def captions_path(root: Path) -> Path:
    return root / "annotations" / f"captions_{SPLIT}.json"


def image_dir(root: Path) -> Path:
    return root / SPLIT


@dataclass(frozen=True)
class CocoImage:
    """One image of the instances file and the categories annotated on it."""

    image_id: int
    file_name: str
    objects: tuple[str, ...]  # category names, each once, in the order first annotated


def read_instances(root: Path) -> list[CocoImage]:
    """Reads `annotations/instances_val2014.json` under `root`, images sorted by id.

    Raises:
        BenchmarkError: the file is missing, not valid JSON, or lacks a section or key of the
            COCO instances format.
    """
    path = instances_path(root)
    data = read_json(path, "COCO instances file", DOWNLOAD_HINT)
    try:
        return _instances(data)
    except (KeyError, TypeError, AttributeError) as error:
        raise BenchmarkError(
            f"COCO instances file {path} is not in the COCO instances format ({_what_is_wrong(data, error)}); "
            f"{DOWNLOAD_HINT}"
        ) from None


def _what_is_wrong(data, error: Exception) -> str:
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    absent = [key for key in ("images", "annotations", "categories") if key not in data]
    if absent:
        return f"no {', '.join(repr(key) for key in absent)} section"
    if isinstance(error, KeyError):
        return f"an entry lacks the key {error}, or an annotation names an unknown category_id"
    return " ".join(str(error).split())


def _instances(data) -> list[CocoImage]:
    names = {category["id"]: category["name"] for category in data["categories"]}
    objects: dict[int, list[str]] = {image["id"]: [] for image in data["images"]}
    for annotation in data["annotations"]:
        found = objects.setdefault(annotation["image_id"], [])
        name = names[annotation["category_id"]]
        if name not in found:
            found.append(name)
    return [
        CocoImage(image["id"], image["file_name"], tuple(objects[image["id"]]))
        for image in sorted(data["images"], key=lambda image: image["id"])
    ]


def require_layout(root: Path) -> None:
    """Checks that the image folder and both annotation files exist before anything is read."""
    require(root, "benchmark root", DOWNLOAD_HINT)
    require(image_dir(root), "COCO image folder", DOWNLOAD_HINT)
    require(instances_path(root), "COCO instances file", DOWNLOAD_HINT)
    require(captions_path(root), "COCO captions file", DOWNLOAD_HINT)
