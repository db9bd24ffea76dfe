"""CHAIR: object hallucination in detailed image captions.

- Paper: Rohrbach et al., "Object Hallucination in Image Captioning" (EMNLP 2018); the protocol
  follows OPERA and the saliency paper: 500 COCO val2014 images, seeded.
- Split: COCO val2014 (images + `instances_val2014.json` + `captions_val2014.json`).
- Layout: `<root>/val2014/COCO_val2014_*.jpg`, `<root>/annotations/instances_val2014.json`,
  `<root>/annotations/captions_val2014.json`.
- Prompt: "Please describe this image in detail."
- Version 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.api import Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.benchmarks._coco import CocoImage, image_dir, read_instances, require_layout
from pipeline.benchmarks._common import seeded_subset
from pipeline.config import BenchmarkConfig

PROMPT = "Please describe this image in detail."
DEFAULT_LIMIT = 500  # images, as OPERA and the paper evaluate CHAIR


@BENCHMARKS.register("chair")
class Chair:
    """Captions a seeded subset of COCO val2014; CHAIR scores them against the annotations."""

    name = "chair"
    version = "1"
    modality = "image"
    metrics = ("chair",)

    def samples(self, config: BenchmarkConfig, seed: int) -> Iterator[Sample]:
        """Yields `config.limit` (default 500) seeded images of the instances file, by image id."""
        root = Path(config.root)
        require_layout(root)
        images = seeded_subset(read_instances(root), config.limit or DEFAULT_LIMIT, seed)
        prompt = config.prompt or PROMPT
        for image in images:
            yield to_sample(image, image_dir(root), prompt)


def to_sample(image: CocoImage, folder: Path, prompt: str) -> Sample:
    return Sample(
        sample_id=f"chair-{image.image_id}",
        benchmark="chair",
        prompt=prompt,
        image_path=str(folder / image.file_name),
        metadata={"image_id": image.image_id},
    )
