"""A small synthetic benchmark written in the real on-disk formats, for the demo and the tests.

`write_synthetic(out_dir)` draws COCO categories as coloured shapes on plain scenes and writes:

    <out>/coco/val2014/COCO_val2014_<id:012d>.jpg
    <out>/coco/annotations/instances_val2014.json     (images, annotations, the 80 categories)
    <out>/coco/annotations/captions_val2014.json      (5 reference captions per image)
    <out>/pope/coco_pope_{random,popular,adversarial}.json   (built from the instances as POPE does)
    <out>/MME_Benchmark_release_version/<task>/...            (all 14 tasks, both layouts)
    <out>/vizwiz, scienceqa, llava-bench-in-the-wild, mm-vet  (their released files + images)
    <out>/GPT_Zero_Shot_QA/{MSVD,MSRVTT,Activitynet}_Zero_Shot_QA/  (test_q/test_a + MP4s)
    <out>/video_chatgpt/{generic,temporal,consistency}_qa.json + Test_Videos/

docs/datasets.md lists each layout and the matching `benchmark.root`.

Objects are drawn from a few scenes (street, kitchen, ...), so some categories are frequent and
some co-occur, which is what POPE's popular and adversarial splits need. The same seed writes
the same bytes.
"""

from __future__ import annotations

import colorsys
import io
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
from pipeline.benchmarks.mme import COGNITION, PERCEPTION, SPLIT_FOLDER_TASKS
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
LLAVA_BENCH_QUESTIONS = (
    "What objects are in this image?",
    "Describe this photo in detail.",
    "Where might this picture have been taken, and why?",
    "How many objects are there?",
)
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
    mme_root: Path
    vizwiz_root: Path
    scienceqa_root: Path
    llava_bench_root: Path
    mm_vet_root: Path
    msvd_qa_root: Path
    msrvtt_qa_root: Path
    activitynet_qa_root: Path
    video_chatgpt_root: Path

    def by_benchmark(self) -> dict[str, Path]:
        """Registered benchmark name -> its root."""
        return {
            "chair": self.coco_root,
            "pope": self.pope_root,
            "mme": self.mme_root,
            "vizwiz": self.vizwiz_root,
            "scienceqa": self.scienceqa_root,
            "llava_bench": self.llava_bench_root,
            "mm_vet": self.mm_vet_root,
            "msvd_qa": self.msvd_qa_root,
            "msrvtt_qa": self.msrvtt_qa_root,
            "activitynet_qa": self.activitynet_qa_root,
            "video_chatgpt": self.video_chatgpt_root,
        }


def write_synthetic(out_dir: str | Path, seed: int = 0, n_images: int = 16) -> SyntheticBenchmark:
    """Writes the synthetic benchmark under `out_dir` (created if needed), in about a second.

    Args:
        out_dir: output folder; existing files of the same names are overwritten.
        seed: decides every image, video, object, caption and question.
        n_images: COCO images to draw (each holds 3 to 5 objects); the other formats have a
            fixed handful of items each.

    Returns:
        The benchmark roots, to use as `benchmark.root` in a run config.
    """
    out = Path(out_dir)
    # One stream per format, so that changing one writer leaves the others' bytes alone.
    streams = {name: random.Random(f"{seed}-{name}") for name in ("coco", "mme", "vqa", "video")}
    roots = SyntheticBenchmark(
        coco_root=out / "coco",
        pope_root=out / "pope",
        mme_root=out / "MME_Benchmark_release_version",
        vizwiz_root=out / "vizwiz",
        scienceqa_root=out / "scienceqa",
        llava_bench_root=out / "llava-bench-in-the-wild",
        mm_vet_root=out / "mm-vet",
        msvd_qa_root=out / "GPT_Zero_Shot_QA" / "MSVD_Zero_Shot_QA",
        msrvtt_qa_root=out / "GPT_Zero_Shot_QA" / "MSRVTT_Zero_Shot_QA",
        activitynet_qa_root=out / "GPT_Zero_Shot_QA" / "Activitynet_Zero_Shot_QA",
        video_chatgpt_root=out / "video_chatgpt",
    )
    _write_coco(roots.coco_root, streams["coco"], n_images)
    images = read_instances(roots.coco_root)
    for split, questions in build_pope(images, seed, n_images=len(images)).items():
        write_jsonl(roots.pope_root / f"coco_pope_{split}.json", questions)
    _write_mme(roots.mme_root, streams["mme"])
    _write_vqa(roots, streams["vqa"])
    _write_video_qa(roots, streams["video"])
    _write_video_chatgpt(roots.video_chatgpt_root, streams["video"])
    return roots


def _draw_scene(rng: random.Random, size: tuple[int, int] = (WIDTH, HEIGHT)) -> tuple[
    Image.Image, str, list[str], list[tuple[int, int, int, int]]
]:  # fmt: skip
    """A picture of one scene with 3 to 5 of its objects: (picture, scene, names, boxes)."""
    scene = rng.choice(sorted(SCENES))
    background, likely = SCENES[scene]
    names = rng.sample(likely[:5], rng.randint(3, 4)) + ([likely[5]] if rng.random() < 0.3 else [])
    picture = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(picture)
    boxes = [_draw_object(draw, name, rng, size) for name in names]
    return picture, scene, names, boxes


@dataclass(frozen=True)
class CocoEntry:
    """One image of a COCO-format set: its JPEG bytes, annotated objects and reference captions.

    Attributes:
        image_id: the COCO image id (the file is COCO_val2014_<id:012d>.jpg).
        jpeg: the encoded image, written as is.
        size: (width, height) in pixels.
        names: category names, one per annotated object.
        boxes: (x, y, w, h) of each object.
        captions: the reference captions.
    """

    image_id: int
    jpeg: bytes
    size: tuple[int, int]
    names: tuple[str, ...]
    boxes: tuple[tuple[int, int, int, int], ...]
    captions: tuple[str, ...]


def write_coco(root: Path, entries: list[CocoEntry], description: str) -> None:
    """Writes `entries` in the COCO 2014 layout: val2014/*.jpg, instances_ and captions_val2014.json.

    Args:
        root: the COCO root (gets `val2014/` and `annotations/`).
        entries: the images in id order.
        description: the `info.description` of both annotation files.
    """
    image_dir(root).mkdir(parents=True, exist_ok=True)
    info = {
        "description": description,
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
    for entry in entries:
        for name, box in zip(entry.names, entry.boxes, strict=True):
            annotations.append(_annotation(len(annotations) + 1, entry.image_id, CATEGORY_IDS[name], box))
        file_name = f"COCO_{SPLIT}_{entry.image_id:012d}.jpg"
        path = image_dir(root) / file_name
        # An identical image is left alone: it keeps its modification time, so a run over this
        # folder written again (the demo run twice) resumes instead of seeing an edited benchmark.
        if not (path.is_file() and path.read_bytes() == entry.jpeg):
            path.write_bytes(entry.jpeg)
        images.append(
            {
                "license": 1,
                "file_name": file_name,
                "coco_url": f"http://images.cocodataset.org/{SPLIT}/{file_name}",
                "height": entry.size[1],
                "width": entry.size[0],
                "date_captured": "2014-01-01 00:00:00",
                "flickr_url": "",
                "id": entry.image_id,
            }
        )
        for caption in entry.captions:
            captions.append({"image_id": entry.image_id, "id": len(captions) + 1, "caption": caption})
    categories = [
        {"supercategory": supercategory, "id": category_id, "name": name}
        for category_id, name, supercategory in COCO_CATEGORIES
    ]
    _write_json(
        instances_path(root),
        {"info": info, "images": images, "licenses": licenses, "annotations": annotations,
         "categories": categories},
    )  # fmt: skip
    _write_json(
        captions_path(root),
        {"info": info, "images": images, "licenses": licenses, "annotations": captions},
    )


def _write_coco(root: Path, rng: random.Random, n_images: int) -> None:
    entries = []
    # Real val2014 ids are below 581930; random ones make file names look like the real set.
    for image_id in sorted(rng.sample(range(1, 581930), n_images)):
        picture, scene, names, boxes = _draw_scene(rng)
        jpeg = io.BytesIO()
        picture.save(jpeg, format="JPEG", quality=JPEG_QUALITY)
        captions = tuple(_caption(template, scene, names) for template in CAPTION_TEMPLATES)
        entries.append(CocoEntry(image_id, jpeg.getvalue(), picture.size, tuple(names), tuple(boxes), captions))
    write_coco(root, entries, "halleval synthetic benchmark in COCO format")


def _yes_no_pair(rng: random.Random, names: list[str]) -> list[tuple[str, str]]:
    """MME-style pair: one present object (Yes) and one absent object (No), in random order."""
    absent = sorted(set(CATEGORY_IDS) - set(names))
    pair = [
        (
            f"Is there {_with_article(rng.choice(names))} in this image? Please answer yes or no.",
            "Yes",
        ),
        (
            f"Is there {_with_article(rng.choice(absent))} in this image? Please answer yes or no.",
            "No",
        ),
    ]
    rng.shuffle(pair)
    return pair


def _write_mme(root: Path, rng: random.Random) -> None:
    """Every MME task with two images, in the task's own layout (split folders or side by side)."""
    for task in PERCEPTION + COGNITION:
        split = task in SPLIT_FOLDER_TASKS
        images = root / task / "images" if split else root / task
        questions = root / task / "questions_answers_YN" if split else root / task
        images.mkdir(parents=True, exist_ok=True)
        questions.mkdir(parents=True, exist_ok=True)
        for index in range(2):
            picture, _, names, _ = _draw_scene(rng, (96, 72))
            stem = f"{task.lower()}_{index:04d}"
            # MME mixes .jpg and .png; OCR and code_reasoning use .png here so both are covered.
            extension = ".png" if task in ("OCR", "code_reasoning") else ".jpg"
            picture.save(images / f"{stem}{extension}")
            lines = [f"{q}\t{a}\n" for q, a in _yes_no_pair(rng, names)]
            (questions / f"{stem}.txt").write_text("".join(lines), encoding="utf-8")


def _write_vqa(roots: SyntheticBenchmark, rng: random.Random) -> None:
    """VizWiz, ScienceQA-IMG, LLaVA-Bench (in-the-wild) and MM-Vet, four items each."""
    vizwiz = []
    (roots.vizwiz_root / "val").mkdir(parents=True, exist_ok=True)
    for index in range(4):
        picture, scene, names, _ = _draw_scene(rng, (96, 72))
        image = f"VizWiz_val_{index:08d}.jpg"
        picture.save(roots.vizwiz_root / "val" / image)
        answerable = index != 3
        answer = scene if answerable else "unanswerable"
        vizwiz.append(
            {"image": image, "question": "What kind of room or place is this?",
             "answers": [{"answer": answer, "answer_confidence": "yes"}] * 10,
             "answer_type": "other" if answerable else "unanswerable",
             "answerable": int(answerable)}
        )  # fmt: skip
    _write_json(roots.vizwiz_root / "Annotations" / "val.json", vizwiz)

    problems, test_ids = {}, []
    for index in range(4):
        pid = str(1000 + index)
        picture, scene, names, _ = _draw_scene(rng, (96, 72))
        image_dir = roots.scienceqa_root / "images" / "test" / pid  # ScienceQA's release layout
        image_dir.mkdir(parents=True, exist_ok=True)
        picture.save(image_dir / "image.png")
        choices = sorted({names[0], rng.choice(sorted(set(CATEGORY_IDS) - set(names)))})
        problems[pid] = {
            "question": "Which object is in the picture?", "choices": choices,
            "answer": choices.index(names[0]),
            "hint": f"The picture shows a {scene}." if index % 2 else "",
            "image": "image.png", "task": "closed choice", "grade": "grade1",
            "subject": "natural science",
            "topic": "objects", "category": "Objects", "skill": "Identify objects", "lecture": "",
            "solution": f"The picture shows {_with_article(names[0])}.", "split": "test",
        }  # fmt: skip
        test_ids.append(pid)
    problems["2000"] = {**problems[test_ids[0]], "image": None}  # text-only: not in -IMG
    _write_json(roots.scienceqa_root / "problems.json", problems)
    _write_json(roots.scienceqa_root / "pid_splits.json", {"test": [*test_ids, "2000"], "val": []})

    questions, answers = [], []
    (roots.llava_bench_root / "images").mkdir(parents=True, exist_ok=True)
    categories = ("conv", "detail", "complex", "conv")
    for index, category in enumerate(categories):
        picture, scene, names, _ = _draw_scene(rng, (96, 72))
        image = f"{index + 1:03d}.jpg"
        picture.save(roots.llava_bench_root / "images" / image)
        text = LLAVA_BENCH_QUESTIONS[index]
        questions.append({"question_id": index, "image": image, "text": text, "category": category})
        answers.append({"question_id": index, "text": _caption(CAPTION_TEMPLATES[0], scene, names),
                        "category": category})  # fmt: skip
    write_jsonl(roots.llava_bench_root / "questions.jsonl", questions)
    write_jsonl(roots.llava_bench_root / "answers_gpt4.jsonl", answers)

    mm_vet = {}
    (roots.mm_vet_root / "images").mkdir(parents=True, exist_ok=True)
    for index in range(4):
        picture, scene, names, _ = _draw_scene(rng, (96, 72))
        key = f"v1_{index}"
        picture.save(roots.mm_vet_root / "images" / f"{key}.png")
        mm_vet[key] = {"imagename": f"{key}.png", "capability": ["rec"],
                       "question": "What is the scene?", "answer": scene}  # fmt: skip
    _write_json(roots.mm_vet_root / "mm-vet.json", mm_vet)


def write_video(
    path: Path, rng: random.Random, n_frames: int = 12, size: tuple[int, int] = (64, 48)
) -> str:
    """Writes a short MPEG-4 video of one shape moving across a plain background.

    Returns:
        The moving object's name (a COCO category), for questions about the video.
    """
    import av  # imported here: only the video formats need it

    name = rng.choice(sorted(CATEGORY_IDS))
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1  # threaded encoding is not byte-deterministic
        for index in range(n_frames):
            picture = Image.new("RGB", size, (200, 200, 200))
            x = index * (width - 16) // max(n_frames - 1, 1)
            ImageDraw.Draw(picture).ellipse(
                (x, height // 3, x + 15, height // 3 + 15), fill=_colour(name)
            )
            container.mux(stream.encode(av.VideoFrame.from_image(picture)))
        container.mux(stream.encode())
    return name


def _write_video_qa(roots: SyntheticBenchmark, rng: random.Random) -> None:
    """Two videos and four questions per video-QA set, each in its dataset's folder layout."""
    layouts = (
        (roots.msvd_qa_root, "videos", "", ".avi"),
        (roots.msrvtt_qa_root, "videos/all", "", ".mp4"),
        (roots.activitynet_qa_root, "all_test", "v_", ".mp4"),
    )
    for root, folder, prefix, extension in layouts:
        questions, answers = [], []
        for index in range(2):
            video_name = f"video{index}" if not prefix else f"synthetic{index:03d}"
            # The file is MPEG-4 in every case; MSVD's real .avi name is kept for its layout.
            moving = write_video(root / folder / f"{prefix}{video_name}{extension}", rng)
            for number, (question, answer) in enumerate(
                (("What is moving in the video?", moving), ("Which way does it move?", "right"))
            ):
                question_id = f"v_{video_name}_{number}"
                questions.append(
                    {"video_name": video_name, "question_id": question_id, "question": question}
                )
                answers.append({"answer": answer, "type": number, "question_id": question_id})
        _write_json(root / "test_q.json", questions)
        _write_json(root / "test_a.json", answers)


def _write_video_chatgpt(root: Path, rng: random.Random) -> None:
    """Video-ChatGPT's three question files over two videos in Test_Videos/."""
    names = [f"v_synthetic{index}" for index in range(2)]
    moving = {name: write_video(root / "Test_Videos" / f"{name}.mp4", rng) for name in names}
    generic, temporal, consistency = [], [], []
    for video_name, name in moving.items():
        answer = (
            f"{_with_article(name).capitalize()} moves from the left to the right of the frame."
        )
        generic.append({"Q": "What happens in this video?", "A": answer, "video_name": video_name})
        temporal.append(
            {"Q": "Where is the object at the end?", "A": "On the right.", "video_name": video_name}
        )
        consistency.append({"Q1": "What is moving in the video?", "Q2": "Which object moves?",
                            "A": answer, "video_name": video_name})  # fmt: skip
    _write_json(root / "generic_qa.json", generic)
    _write_json(root / "temporal_qa.json", temporal)
    _write_json(root / "consistency_qa.json", consistency)


def _colour(name: str) -> tuple[int, int, int]:
    """A fixed saturated colour per category, spread around the hue circle by category id."""
    red, green, blue = colorsys.hsv_to_rgb((CATEGORY_IDS[name] * 0.137) % 1.0, 0.8, 0.9)
    return int(red * 255), int(green * 255), int(blue * 255)


def _draw_object(
    draw: ImageDraw.ImageDraw, name: str, rng: random.Random, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Draws one object as a shape (kind fixed per category) and returns its box x, y, w, h."""
    width, height = size
    w, h = rng.randint(width // 7, width * 5 // 14), rng.randint(height // 6, height * 5 // 12)
    x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    draw_category(draw, name, (x, y, x + w - 1, y + h - 1))
    return x, y, w, h


def draw_category(draw: ImageDraw.ImageDraw, name: str, corners: tuple[int, int, int, int]) -> None:
    """Draws category `name` inside `corners` (left, top, right, bottom) as its fixed shape and colour.

    The shape is a rectangle, an ellipse or a triangle by category id; the colour is `_colour`.
    The model organism (`pipeline.organism`) draws its scenes with the same rule.
    """
    left, top, right, bottom = corners
    kind = CATEGORY_IDS[name] % 3
    if kind == 0:
        draw.rectangle(corners, fill=_colour(name), outline=(0, 0, 0))
    elif kind == 1:
        draw.ellipse(corners, fill=_colour(name), outline=(0, 0, 0))
    else:
        draw.polygon(
            [((left + right + 1) // 2, top), (left, bottom), (right, bottom)],
            fill=_colour(name),
            outline=(0, 0, 0),
        )


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
