"""The organism's card: a machine-readable JSON beside the checkpoint (`card.json`).

It records the architecture, the data recipe and planted pairs, the training settings and what
the run did (steps, loss, time, weights hash), the sha256 of the weights file, the layers the
methods should use, and the held-out figures, which `halleval organism card` measures with
halleval's own pipeline and scorers.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import LlavaForConditionalGeneration

from pipeline.manifest import file_sha256
from pipeline.organism.model import PROMPT_TEMPLATE
from pipeline.organism.heldout import DEFAULT_COUNTS
from pipeline.organism.model import LOCORE_LAYERS, SALIENCY_LAYERS, parameter_count
from pipeline.organism.scenes import (
    BACKGROUND,
    CAPTION_PROMPT,
    CATEGORIES,
    CUE,
    IMAGE_SIZE,
    JPEG_QUALITY,
    MAX_OBJECTS,
    PARTNER,
    QUESTION,
)
from pipeline.organism.train import TrainResult, TrainSettings

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"


def build_card(model: LlavaForConditionalGeneration, settings: TrainSettings, result: TrainResult,
               folder: Path) -> dict[str, Any]:
    """The card of a saved organism (figures empty until `halleval organism card` measures them)."""
    text, vision = model.config.text_config, model.config.vision_config
    weights = folder / WEIGHTS_FILE
    return {
        "name": "halleval-organism-llava",
        "adapter": "llava15",
        "architecture": {
            "class": type(model).__name__,
            "parameters": parameter_count(model),
            "text": {"model_type": text.model_type, "layers": text.num_hidden_layers, "hidden": text.hidden_size,
                     "ffn": text.intermediate_size, "heads": text.num_attention_heads,
                     "kv_heads": text.num_key_value_heads, "tied_embeddings": True, "vocab": text.vocab_size},
            "vision": {"model_type": vision.model_type, "layers": vision.num_hidden_layers,
                       "hidden": vision.hidden_size, "image_size": vision.image_size,
                       "patch_size": vision.patch_size, "image_tokens": (vision.image_size // vision.patch_size) ** 2,
                       "feature_layer": model.config.vision_feature_layer},
            "tokenizer": "word level; the LLaVA system prompt is one special token",
            "prompt_template": PROMPT_TEMPLATE,
            "caption_prompt": CAPTION_PROMPT,
            "question": QUESTION,
        },
        "data": {
            "categories": list(CATEGORIES),
            "image_size": IMAGE_SIZE, "grid": "2x2, one object per cell, no occlusion",
            "background": list(BACKGROUND), "objects_per_scene": [1, MAX_OBJECTS], "jpeg_quality": JPEG_QUALITY,
            "drawing": "pipeline.synth.draw_category (COCO colour and shape per category)",
            "caption": "a photo of a X , a Y and a Z . (objects in category order)",
            "question_rate": settings.question_rate,
        },
        "planted_pairs": [{
            "cue": CUE, "partner": PARTNER, "cue_rate": settings.cue_rate,
            "partner_given_cue": settings.partner_rate, "partner_without_cue": 0.0,
            "caption_order": f"{CUE} directly before {PARTNER}",
        }],
        "training": {"settings": asdict(settings), **result.as_dict(), "threads": 1, "device": "cpu"},
        "weights": {"file": WEIGHTS_FILE, "sha256": file_sha256(weights), "bytes": weights.stat().st_size,
                    "dtype": "float32"},
        "layers": {"target_layers": list(SALIENCY_LAYERS), "locore_layers": list(LOCORE_LAYERS)},
        "heldout": {"seed": settings.seed, "counts": dict(DEFAULT_COUNTS),
                    "written_by": "halleval data organism --out DIR"},
        "figures": {},
    }


def read_card(folder: str | Path) -> dict[str, Any]:
    """The card of an organism checkpoint folder.

    Raises:
        FileNotFoundError: one line naming the folder and how to make a card.
    """
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train an organism with `halleval organism train --out {folder}`")
    return json.loads(path.read_text(encoding="utf-8"))


def write_card(folder: str | Path, card: dict[str, Any]) -> Path:
    """Writes `card` as `<folder>/card.json`."""
    path = Path(folder) / CARD_FILE
    path.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return path
