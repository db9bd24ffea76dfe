"""Speed of the scorers: CHAIR over 5,000 captions and POPE over 9,000 answers.

Builds a synthetic COCO-format annotation folder (500 images) and captions from templates,
seeded, in a temporary folder; prints the ground-truth build time (cold, then from the cache)
and captions/s. Run: `python benchmarks/metrics_speed.py`.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OBJECTS = ["dog", "cat", "person", "car", "bus", "pizza", "hot dog", "teddy bear", "chair", "dining table",
           "toilet", "skis", "bench", "umbrella", "horse", "laptop", "cell phone", "bowl", "sink", "clock"]
TEMPLATES = ["A {a} next to a {b} on a sunny day.", "Two {a}s and a {b} in a room. The {c} is small.",
             "A man riding past a {a}, with a {b} behind him.", "There is a {a} and a {b} near some {c}s."]


def main() -> None:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HALLEVAL_CACHE"] = str(Path(tmp) / "cache")
        from eval.metrics.chair import ground_truth, score_captions
        from eval.metrics.pope import score_answers

        ann = Path(tmp) / "annotations"
        ann.mkdir()
        categories = [{"id": i, "name": name} for i, name in enumerate(OBJECTS)]
        instances = [{"image_id": img, "category_id": rng.randrange(len(OBJECTS))} for img in range(500) for _ in range(3)]
        captions = [{"image_id": img, "caption": rng.choice(TEMPLATES).format(a=rng.choice(OBJECTS), b=rng.choice(OBJECTS), c=rng.choice(OBJECTS))}
                    for img in range(500) for _ in range(5)]
        (ann / "instances_val2014.json").write_text(json.dumps({"categories": categories, "annotations": instances}))
        (ann / "captions_val2014.json").write_text(json.dumps({"annotations": captions}))

        start = time.perf_counter()
        ground_truth(ann)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        ground_truth(ann)
        warm = time.perf_counter() - start
        print(f"CHAIR ground truth (2,500 reference captions, incl. WordNet load): cold {cold:.2f} s, cached {warm * 1000:.1f} ms")

        pairs = [(rng.randrange(500), rng.choice(TEMPLATES).format(a=rng.choice(OBJECTS), b=rng.choice(OBJECTS), c=rng.choice(OBJECTS)))
                 for _ in range(5000)]
        start = time.perf_counter()
        result = score_captions(pairs, ann)
        elapsed = time.perf_counter() - start
        print(f"CHAIR 5,000 captions: {elapsed:.2f} s = {5000 / elapsed:,.0f} captions/s "
              f"(tagger {result['tagger']}, CHAIR_s {result['chair_s']:.3f})")

        labels = {i: rng.choice(["yes", "no"]) for i in range(9000)}
        answers = [(i, rng.choice(["Yes.", "No, there is not.", "yes", "There is no cat", "Yes, there is a dog."])) for i in range(9000)]
        start = time.perf_counter()
        score_answers(labels, answers)
        elapsed = time.perf_counter() - start
        print(f"POPE 9,000 answers: {elapsed * 1000:.1f} ms = {9000 / elapsed:,.0f} answers/s")


if __name__ == "__main__":
    main()
