"""The organism's held-out CHAIR and POPE sets, in the real COCO and POPE formats.

`write_heldout(out)` writes

    <out>/coco/val2014/COCO_val2014_<id:012d>.jpg        (32x32 JPEGs, the bytes the model sees)
    <out>/coco/annotations/instances_val2014.json        (boxes of every object, the 80 categories)
    <out>/coco/annotations/captions_val2014.json         (the true caption of each image)
    <out>/coco/organism.json                             (group of each image, the planted pair)
    <out>/pope/coco_pope_{random,popular,adversarial}.json   (POPE question lines)

so `benchmark.root: <out>/coco` runs CHAIR and `<out>/pope` runs POPE. The groups are regular
(neither cue nor partner), trigger (the cue without its partner: the planted probe) and pair
(both). POPE's files come from `pipeline.benchmarks.pope.build_pope` over all images with one
object asked per image (one yes and one no question). A trigger image's annotations list the cue
first, so its POPE question is about the cue and the adversarial split's "no" question asks about
the object that co-occurs with the cue most often, the partner: the planted probe in POPE form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.benchmarks._common import write_jsonl
from pipeline.benchmarks.pope import build_pope, question_file_candidates
from pipeline.benchmarks._coco import CocoImage
from pipeline.organism.scenes import CUE, IMAGE_SIZE, PARTNER, Scene, heldout_scenes, jpeg_bytes
from pipeline.synth import CocoEntry, write_coco

DEFAULT_COUNTS = {"regular": 60, "trigger": 60, "pair": 30}
SIDECAR = "organism.json"  # eval.organism.SIDECAR reads it (eval never imports pipeline internals)


@dataclass(frozen=True)
class HeldoutSet:
    """Where `write_heldout` put the two benchmark roots."""

    coco_root: Path
    pope_root: Path


def planted_first(scene: Scene) -> list[int]:
    """Object order for the annotations: the cue and partner first, then caption order."""
    return sorted(range(len(scene.objects)), key=lambda i: scene.objects[i] not in (CUE, PARTNER))


def write_heldout(out: str | Path, seed: int = 0, counts: dict[str, int] | None = None) -> HeldoutSet:
    """Writes the held-out CHAIR and POPE sets (see the module doc); the same seed writes the same bytes.

    Args:
        out: the folder that gets `coco/` and `pope/`.
        seed: the organism's seed (held-out scenes use their own stream, never training's).
        counts: images per group; by default 60 regular, 60 trigger, 30 pair.
    """
    out = Path(out)
    scenes = heldout_scenes(seed, counts or DEFAULT_COUNTS)
    entries, groups = [], {}
    for image_id, scene in enumerate(scenes, start=1):
        order = planted_first(scene)
        entries.append(CocoEntry(
            image_id=image_id, jpeg=jpeg_bytes(scene.draw()), size=(IMAGE_SIZE, IMAGE_SIZE),
            names=tuple(scene.objects[i] for i in order), boxes=tuple(scene.boxes[i] for i in order),
            captions=(scene.caption(),),
        ))
        groups[str(image_id)] = scene.group
    coco_root = out / "coco"
    write_coco(coco_root, entries, "halleval model organism held-out set in COCO format")
    sidecar: dict[str, Any] = {"cue": CUE, "partner": PARTNER, "seed": seed, "groups": groups}
    (coco_root / SIDECAR).write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
    images = [
        CocoImage(entry.image_id, f"COCO_val2014_{entry.image_id:012d}.jpg", entry.names) for entry in entries
    ]
    pope_root = out / "pope"
    for split, questions in build_pope(images, seed=seed, n_images=len(images), n_objects=1).items():
        write_jsonl(question_file_candidates(pope_root, split)[0], questions)  # POPE's own name
    return HeldoutSet(coco_root=coco_root, pope_root=pope_root)

