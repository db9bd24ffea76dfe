"""CHAIR (Rohrbach et al., 2018), exactly as the CHAIR script distributed with OPERA scores it.

Reference: shikiw/OPERA `chair.py` (a Python 3 port of LisaAnne/Hallucination `utils/chair.py`
with Recall added). What it does, and so what this module does, quirks included:

- A caption is lower-cased, split by `nltk.word_tokenize`, tagged by `nltk.pos_tag`, and every
  token lemmatised by WordNet with the tag's POS (J→adj, V→verb, N→noun, R→adv, else noun).
  So "skiing" tagged VBG becomes "ski" and counts as the object skis.
- Adjacent lemma pairs in the double-word table merge into one word ("hot dog", "teddy bear",
  "baby bird" → "bird", "passenger jet" → "jet", "toilet seat" → "toilet", ...); the merged
  list is what `avg_len` counts, punctuation included.
- If both "toilet" and "seat" remain, every "seat" is dropped (a toilet seat is not a chair).
- A word is an object when it is in the synonym table; its canonical name is the table row's
  first entry. The table is the reference's verbatim (eval/data/chair_synonyms.txt), including
  its typos: rows split on ", " so " motor bike" and " cheesecake" carry a leading space and
  never match, and "iPhone" never matches lower-cased text.
- Ground truth per image: the canonical names of its instance annotations plus every object
  found (by the same procedure) in its reference captions, train and val merged.
- CHAIR_s = captions with ≥1 hallucinated object / captions; CHAIR_i = hallucinated object
  mentions / object mentions (repeats count); Recall = Σ|GT objects mentioned| / Σ|GT objects|;
  the reference's `Len` is 0.01 × mean merged-token count, we report the mean itself (`avg_len`).

The tokenizer, tagger and lemmatiser come from eval.nlp (offline); the tagger used is recorded
in every result. Ground truth takes minutes to build over COCO, so it is cached on disk, keyed
by the annotation files, the tagger and the NLTK version.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import nltk
import pyarrow as pa
from eval import nlp
from eval.api import METRICS, Metric, RunRow, ScoringContext, ScoringError
from eval.io import cache_dir, read_records, require
from eval.metrics._rows import split_rows

CACHE_VERSION = "1"  # bump when caption_to_words changes, so cached ground truth is rebuilt

_SYNONYM_ROWS = [
    line.strip().split(", ")
    for line in (Path(__file__).parents[1] / "data" / "chair_synonyms.txt").read_text().splitlines()
]
INVERSE_SYNONYMS: dict[str, str] = {word: row[0] for row in _SYNONYM_ROWS for word in row}
"""Every object word of the table → its canonical COCO name."""

_DOUBLE_WORDS = [
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
    "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball",
    "baseball bat", "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone",
    "mobile phone", "teddy bear", "hair drier", "potted plant", "bow tie", "laptop computer",
    "stove top oven", "home plate", "train track",
]
_ANIMAL_WORDS = ["bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
                 "giraffe", "animal", "cub"]
DOUBLE_WORDS: dict[str, str] = {
    **{pair: pair for pair in _DOUBLE_WORDS},
    **{f"{age} {animal}": animal for animal in _ANIMAL_WORDS for age in ("baby", "adult")},
    **{f"passenger {vehicle}": vehicle for vehicle in ("jet", "train")},
    # Later entries win, as in the reference: "bow tie" is the object tie.
    "bow tie": "tie", "toilet seat": "toilet", "wine glas": "wine glass",
}
"""Adjacent lemma pairs read as one word, and the word they become."""


def _wordnet_pos(tag: str) -> str:
    """The reference's get_wordnet_pos, with its fallback to noun for every other tag."""
    return {"J": "a", "V": "v", "N": "n", "R": "r"}.get(tag[:1], "n")


@dataclass
class CaptionObjects:
    """The objects CHAIR finds in one caption.

    Attributes:
        words: the object words as written (after lemmatising and merging), in caption order.
        objects: their canonical COCO names, aligned with `words`.
        token_spans: for each object, the (first, last + 1) indices into `tokens`.
        tokens: the caption's tokens (of the lower-cased caption, before merging).
        n_words: the number of merged words, punctuation included (what `avg_len` averages).
    """

    words: list[str]
    objects: list[str]
    token_spans: list[tuple[int, int]]
    tokens: list[str]
    n_words: int


def caption_objects(caption: str, tagger: str = "auto") -> CaptionObjects:
    """Finds the COCO objects in a caption, as the reference's caption_to_words does.

    The reference also returns token indices, but misaligns them after it drops "seat"; ours
    stay aligned (they place objects for saliency-bins and change no score).
    """
    _, tag = nlp.pos_tagger(tagger)
    tokens = nlp.word_tokenize(caption.lower())
    lemmas = [nlp.lemmatize(token, _wordnet_pos(pos)) for token, pos in tag(tokens)]
    merged: list[tuple[str, int, int]] = []  # (word, first token, last token + 1)
    i = 0
    while i < len(lemmas):
        pair = " ".join(lemmas[i:i + 2])
        if pair in DOUBLE_WORDS:
            merged.append((DOUBLE_WORDS[pair], i, i + 2))
            i += 2
        else:
            merged.append((lemmas[i], i, i + 1))
            i += 1
    kept = merged
    if any(w == "toilet" for w, _, _ in merged) and any(w == "seat" for w, _, _ in merged):
        kept = [m for m in merged if m[0] != "seat"]
    found = [m for m in kept if m[0] in INVERSE_SYNONYMS]
    return CaptionObjects(
        words=[w for w, _, _ in found],
        objects=[INVERSE_SYNONYMS[w] for w, _, _ in found],
        token_spans=[(a, b) for _, a, b in found],
        tokens=tokens,
        n_words=len(merged),
    )


def annotation_dir(root: str | Path) -> Path:
    """`root/annotations` when that folder exists, else `root` (the COCO annotation JSONs)."""
    root = Path(root)
    return root / "annotations" if (root / "annotations").is_dir() else root


def _annotation_files(directory: Path) -> dict[str, list[Path]]:
    files = {}
    for kind in ("instances", "captions"):
        val = directory / f"{kind}_val2014.json"
        if not val.is_file():
            raise FileNotFoundError(f"{val}: no such file (CHAIR needs COCO {kind}_val2014.json)")
        train = directory / f"{kind}_train2014.json"
        files[kind] = [val] + ([train] if train.is_file() else [])
    return files


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ScoringError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from None


def _build_ground_truth(files: dict[str, list[Path]], tagger: str) -> dict[int, list[str]]:
    objects: dict[int, set[str]] = defaultdict(set)
    for path in files["instances"]:
        data = _load_json(path)
        names = {cat["id"]: cat["name"] for cat in data["categories"]}
        for ann in data["annotations"]:
            objects[ann["image_id"]].add(INVERSE_SYNONYMS[names[ann["category_id"]]])
    for path in files["captions"]:
        for ann in _load_json(path)["annotations"]:
            objects[ann["image_id"]].update(caption_objects(ann["caption"], tagger).objects)
    return {image_id: sorted(names) for image_id, names in objects.items()}


def ground_truth(annotations: str | Path, tagger: str = "auto") -> dict[int, list[str]]:
    """Objects of every annotated image (canonical names, sorted), from the disk cache if built.

    Args:
        annotations: the folder with instances_*2014.json and captions_*2014.json (or its parent
            holding annotations/).
        tagger: a choice of eval.nlp.TAGGER_CHOICES; the cache is per resolved tagger.
    """
    files = _annotation_files(annotation_dir(annotations))
    tagger_name, _ = nlp.pos_tagger(tagger)
    stamp = [CACHE_VERSION, tagger_name, nltk.__version__] + [
        f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sum(files.values(), [])
    ]
    key = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:20]
    cached = cache_dir() / "chair" / f"gt-{key}.json"
    if cached.is_file():
        return {int(k): v for k, v in json.loads(cached.read_text()).items()}
    truth = _build_ground_truth(files, tagger_name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({str(k): v for k, v in truth.items()}))
    partial.replace(cached)  # atomic: a concurrent reader never sees half a file
    return truth


def caption_outcome(image_id: int, caption: str, truth: dict[int, list[str]], tagger: str) -> dict[str, Any]:
    """One caption's CHAIR outcome: mentioned and hallucinated objects, ground truth, length."""
    found = caption_objects(caption, tagger)
    gt = truth.get(image_id, [])
    return {"image_id": image_id, "caption": caption, "mentioned": found.objects,
            "hallucinated": [name for name in found.objects if name not in gt], "gt_objects": gt,
            "n_words": found.n_words}


def score_captions(
    captions: Iterable[tuple[int, str]], annotations: str | Path, tagger: str = "auto"
) -> dict[str, Any]:
    """Scores (image_id, caption) pairs; the function both the CLI and runs go through.

    Returns:
        chair_s, chair_i, recall, avg_len, n_captions, tagger, nltk, per_caption. chair_i is
        None when no caption mentions an object and recall None when no image has ground
        truth (the reference divides by zero there).
    """
    truth = ground_truth(annotations, tagger)
    tagger_name, _ = nlp.pos_tagger(tagger)
    return chair_scores([caption_outcome(image_id, caption, truth, tagger_name) for image_id, caption in captions],
                        tagger_name)


def chair_scores(outcomes: list[dict[str, Any]], tagger: str) -> dict[str, Any]:
    """CHAIR_s, CHAIR_i, recall and avg_len of caption outcomes (see caption_outcome)."""
    n = len(outcomes)
    if n == 0:
        raise ScoringError("no captions to score")
    n_mentions = sum(len(o["mentioned"]) for o in outcomes)
    n_gt = sum(len(o["gt_objects"]) for o in outcomes)
    return {
        "chair_s": sum(bool(o["hallucinated"]) for o in outcomes) / n,
        "chair_i": sum(len(o["hallucinated"]) for o in outcomes) / n_mentions if n_mentions else None,
        "recall": sum(len(set(o["mentioned"]) & set(o["gt_objects"])) for o in outcomes) / n_gt if n_gt else None,
        "avg_len": sum(o["n_words"] for o in outcomes) / n,
        "n_captions": n,
        "tagger": tagger,
        "nltk": nltk.__version__,
        "per_caption": [{key: o[key] for key in ("image_id", "caption", "mentioned", "hallucinated", "gt_objects")}
                        for o in outcomes],
    }


def _image_id(value: Any, place: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScoringError(f"{place}: image_id must be an integer COCO id, got {value!r}")
    return value


def read_captions(path: str | Path) -> list[tuple[int, str]]:
    """Reads the reference's caption file: a JSON list or JSONL of {image_id, caption}."""
    pairs = []
    for index, record in enumerate(read_records(path)):
        place = f"{path}: record {index + 1}"
        require(record, ("image_id", "caption"), place)
        pairs.append((_image_id(record["image_id"], place), str(record["caption"])))
    if not pairs:
        raise ScoringError(f"{path}: the file holds no captions")
    return pairs


def run_captions(generations: pa.Table) -> tuple[list[tuple[int, str]], int]:
    """(image_id, output_text) of a run's rows without error, and the number of error rows."""
    rows, failed = split_rows(generations)
    pairs = [(_image_id(meta.get("image_id"), f"sample {row['sample_id']}"), row["output_text"] or "")
             for row, meta in rows]
    return pairs, len(failed)


def run_outcomes(rows: list[RunRow], context: ScoringContext) -> list[dict[str, Any]]:
    """Per-sample CHAIR outcomes of a run; an error row's outcome is marked and not scored."""
    truth = ground_truth(context.benchmark_root, context.tagger)
    tagger_name, _ = nlp.pos_tagger(context.tagger)
    outcomes = []
    for row, meta in rows:
        if row.get("error") is not None:
            outcomes.append({"scored": False})
            continue
        image_id = _image_id(meta.get("image_id"), f"sample {row['sample_id']}")
        outcomes.append({**caption_outcome(image_id, row["output_text"] or "", truth, tagger_name),
                         "tagger": tagger_name, "scored": True})
    return outcomes


def aggregate(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """CHAIR over the scored outcomes; error rows are counted in n_errors."""
    scored = [o for o in outcomes if o["scored"]]
    tagger = scored[0]["tagger"] if scored else nlp.pos_tagger("auto")[0]
    return {**chair_scores(scored, tagger), "n_errors": len(outcomes) - len(scored)}


METRICS.register("chair")(Metric(
    name="chair",
    description="CHAIR_s, CHAIR_i, recall and length of captions (OPERA's chair.py); error rows left out.",
    per_sample=run_outcomes,
    aggregate=aggregate,
    higher_is_better={"chair_s": False, "chair_i": False, "recall": True},
))
