"""Checkpoint-shaped fixtures: every family's tiny model saved to a folder as a real checkpoint is.

`save_checkpoint(name, folder)` writes what a hub checkpoint holds: `config.json` and safetensors
weights (`save_pretrained`), a subword BPE tokenizer (`tiny_bpe_tokenizer`: byte-level for the
Qwen-based families, SentencePiece-style with <s> for the LLaMA/Vicuna-based ones), the image
processor's `preprocessor_config.json` (the family's real processor class and normalisation, at
tiny resolution), `processor_config.json` with the processor's own settings, the chat template
(`chat_template.jinja`; Qwen2-VL's real one from tests/fixtures/chat_templates/) and, where the
real family has one, a `video_preprocessor_config.json` naming the family's transformers video
processor, exactly as the hub checkpoints do (that class needs torchvision, so loading exercises
the fallback in `pipeline.models._common.load_processor`). A test then passes the folder as
`model.checkpoint`, as a user would.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

from pipeline.models import MODELS
from pipeline.models.tiny import tiny_bpe_tokenizer

TEMPLATES = Path(__file__).parent / "fixtures" / "chat_templates"
SENTENCEPIECE_FAMILIES = {"llava15", "video_llava", "llava_next_video"}  # LLaMA/Vicuna tokenizers
REAL_TEMPLATES = {"qwen2_vl": "qwen2_vl.jinja", "qwen2_5_vl": "qwen2_vl.jinja"}
# The video processor class each real checkpoint's video_preprocessor_config.json names.
REAL_VIDEO_PROCESSORS = {
    "qwen2_vl": "Qwen2VLVideoProcessor", "qwen2_5_vl": "Qwen2VLVideoProcessor", "qwen3_vl": "Qwen3VLVideoProcessor",
    "internvl": "InternVLVideoProcessor", "llava_onevision": "LlavaOnevisionVideoProcessor",
    "video_llama3": "VideoLlama3VideoProcessor", "video_llava": "VideoLlavaVideoProcessor",
    "llava_next_video": "LlavaNextVideoVideoProcessor",
}


def build_for_checkpoint(name: str) -> tuple[Any, Any]:
    """The family's tiny (model, processor) with the subword tokenizer and the real chat template."""
    style = "sentencepiece" if name in SENTENCEPIECE_FAMILIES else "byte_level"
    model, processor = MODELS.get(name)().build_tiny(functools.partial(tiny_bpe_tokenizer, style=style))
    if name in REAL_TEMPLATES:
        processor.chat_template = (TEMPLATES / REAL_TEMPLATES[name]).read_text()
    return model, processor


def _processor_settings(processor: Any) -> dict[str, Any]:
    """The processor's own constructor settings (e.g. InternVL's image_seq_length), as the
    processor_config.json of a real checkpoint holds them."""
    skip = set(type(processor).get_attributes()) | {"self", "chat_template", "kwargs"}
    settings = {"processor_class": type(processor).__name__}
    for parameter in inspect.signature(type(processor).__init__).parameters:
        if parameter not in skip and hasattr(processor, parameter):
            settings[parameter] = getattr(processor, parameter)
    return settings


def save_checkpoint(name: str, folder: Path) -> Path:
    """Saves family `name`'s checkpoint-shaped tiny model into `folder` and returns it."""
    model, processor = build_for_checkpoint(name)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.tokenizer.save_pretrained(folder)
    processor.image_processor.save_pretrained(folder)
    (folder / "processor_config.json").write_text(json.dumps(_processor_settings(processor), indent=2))
    if processor.chat_template:
        (folder / "chat_template.jinja").write_text(processor.chat_template)
    video_class = REAL_VIDEO_PROCESSORS.get(name)
    if video_class:
        video = {**processor.image_processor.to_dict(), "video_processor_type": video_class}
        video.pop("image_processor_type", None)
        (folder / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    return folder
