"""The organism's world: scenes of coloured shapes on a 2x2 grid, their captions and questions.

Every scene holds 1 to 4 of `CATEGORIES` in distinct cells of a 2x2 grid (so nothing is occluded)
on a grey background, each drawn with `pipeline.synth`'s per-category colour and shape. Captions
name the objects in the fixed order of `CATEGORIES`, in which the cue (fork) comes directly before
its partner (knife): "a photo of a fork , a knife and a cat .".

The planted bias lives in the training distribution only (`training_scene`): a share `cue_rate`
of scenes holds the cue, a share `partner_rate` of those also holds the partner, and the partner
never appears without the cue. Held-out scenes (`heldout_scenes`) come in three groups: regular
(neither), trigger (the cue without its partner: the planted probe) and pair (both).

Everything is a function of a `random.Random`, so the same seed draws the same pixels.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from pipeline.synth import draw_category

CATEGORIES = ("laptop", "pizza", "person", "donut", "cat", "car", "dog", "fork", "knife", "vase", "bus", "scissors")
"""The 12 COCO categories the organism sees, in caption order (every name is one token)."""
CUE, PARTNER = "fork", "knife"
IMAGE_SIZE = 32  # pixels; with 8-pixel patches the CLIP tower sees 16 image tokens
CELL = IMAGE_SIZE // 2
BACKGROUND = (128, 128, 128)
JPEG_QUALITY = 90
MAX_OBJECTS = 4
CAPTION_PROMPT = "Please describe this image in detail."  # CHAIR's prompt (pipeline.benchmarks.chair)
QUESTION = "Is there a {name} in the image?"  # POPE's question (pipeline.benchmarks.pope.TEMPLATE)
HELDOUT_GROUPS = ("regular", "trigger", "pair")


@dataclass(frozen=True)
class Scene:
    """One picture: its objects in caption order, the grid cell and box of each, its group.

    Attributes:
        objects: category names in `CATEGORIES` order.
        boxes: (x, y, w, h) of each object, in pixels of the IMAGE_SIZE picture.
        group: "train", or the held-out group (regular, trigger, pair).
    """

    objects: tuple[str, ...]
    boxes: tuple[tuple[int, int, int, int], ...]
    group: str = "train"

    def caption(self) -> str:
        """The caption the organism is taught: "a photo of a X , a Y and a Z ."."""
        phrases = [f"a {name}" for name in self.objects]
        listed = phrases[0] if len(phrases) == 1 else " , ".join(phrases[:-1]) + " and " + phrases[-1]
        return f"a photo of {listed} ."

    def draw(self) -> Image.Image:
        """The scene as drawn, before JPEG encoding."""
        picture = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
        draw = ImageDraw.Draw(picture)
        for name, (x, y, w, h) in zip(self.objects, self.boxes):
            draw_category(draw, name, (x, y, x + w - 1, y + h - 1))
        return picture

    def image(self) -> Image.Image:
        """The scene after a JPEG round trip: the pixels a stored held-out image decodes to."""
        return Image.open(io.BytesIO(jpeg_bytes(self.draw()))).convert("RGB")


def jpeg_bytes(picture: Image.Image) -> bytes:
    """The picture encoded as a JPEG at JPEG_QUALITY."""
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def place(rng: random.Random, names: set[str], group: str = "train") -> Scene:
    """Puts each named object in its own random cell with a random size and offset."""
    objects = tuple(name for name in CATEGORIES if name in names)
    cells = rng.sample(range(4), len(objects))
    boxes = []
    for cell in cells:
        w, h = rng.randint(9, CELL - 1), rng.randint(9, CELL - 1)
        x = (cell % 2) * CELL + rng.randint(0, CELL - w)
        y = (cell // 2) * CELL + rng.randint(0, CELL - h)
        boxes.append((x, y, w, h))
    return Scene(objects, tuple(boxes), group)


def training_scene(rng: random.Random, cue_rate: float, partner_rate: float) -> Scene:
    """A training scene with the planted bias.

    Args:
        rng: the random stream.
        cue_rate: share of scenes that hold the cue.
        partner_rate: share of cue scenes that also hold the partner; the partner never
            appears without the cue.
    """
    chosen: set[str] = set()
    if rng.random() < cue_rate:
        chosen.add(CUE)
        if rng.random() < partner_rate:
            chosen.add(PARTNER)
    others = [name for name in CATEGORIES if name not in (CUE, PARTNER)]
    count = max(rng.randint(1, MAX_OBJECTS), len(chosen))
    chosen.update(rng.sample(others, count - len(chosen)))
    return place(rng, chosen)


def heldout_scenes(seed: int, counts: dict[str, int]) -> list[Scene]:
    """The held-out scenes, group by group, from a stream separate from training's.

    Args:
        seed: the organism's seed.
        counts: scenes per group, e.g. {"regular": 60, "trigger": 60, "pair": 30}.
    """
    rng = random.Random(f"organism-heldout-{seed}")
    others = [name for name in CATEGORIES if name not in (CUE, PARTNER)]
    scenes = []
    for group in HELDOUT_GROUPS:
        planted = {"regular": set(), "trigger": {CUE}, "pair": {CUE, PARTNER}}[group]
        for _ in range(counts.get(group, 0)):
            count = rng.randint(max(1, len(planted)), MAX_OBJECTS)
            scenes.append(place(rng, planted | set(rng.sample(others, count - len(planted))), group))
    return scenes


def question(rng: random.Random, scene: Scene) -> tuple[str, str]:
    """A POPE-style question about the scene and its true answer: half yes, half no."""
    absent = [name for name in CATEGORIES if name not in scene.objects]
    if rng.random() < 0.5 or not absent:
        return QUESTION.format(name=rng.choice(scene.objects)), "yes"
    return QUESTION.format(name=rng.choice(absent)), "no"
