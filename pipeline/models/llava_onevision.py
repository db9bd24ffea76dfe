"""LLaVA-OneVision (transformers `LlavaOnevisionForConditionalGeneration`), e.g.
llava-hf/llava-onevision-qwen2-0.5b-ov-hf, -7b-ov-hf, -72b-ov-hf (and the -si single-image ones).

A SigLIP tower (384-pixel tiles, 14-pixel patches, all 729 patch features: strategy "full") and a
Qwen2 language model. Images are "anyres": a base view plus up to 3x3 tiles from a pinpoint grid
(`vision_aspect_ratio` anyres_max_9), so the number of `<image>` tokens depends on the image's
shape; the processor expands the one placeholder to all of them.

Prompt: the checkpoint's own chat template (ChatML, no default system turn); the image entry
renders as "<image>", before the question:
"<|im_start|>user\\n<image>{prompt}<|im_end|>\\n<|im_start|>assistant\\n".

Layer defaults: not in the paper (it predates this family's use in hallucination work). As a
LLaVA-architecture model we take LLaVA-1.5's (saliency 6-8, LocoRE 9-14, beta 0.15); the 7B
model's 28-layer Qwen2 puts them at the same depth as for Qwen2-VL. The 0.5B model has 24
layers, where 9-14 reach 58 % of the depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    BatchFeature,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    Qwen2Config,
    SiglipVisionConfig,
)

from pipeline.api import LoadedModel, Visual
from pipeline.config import ModelArgs
from pipeline.models import MODELS
from pipeline.models._common import FrameVideoProcessor, chat_template_image_inputs, load_model
from pipeline.models.tiny import TokenizerFactory, chatml_template, seeded_init, tiny_text_config, tiny_tokenizer

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"
TINY_TILE = 28  # 2x2 patches of 14 px per tile; the real checkpoints' tiles are 384 px (27x27)
TINY_PINPOINTS = [[TINY_TILE, TINY_TILE], [TINY_TILE, 2 * TINY_TILE], [2 * TINY_TILE, TINY_TILE], [2 * TINY_TILE, 2 * TINY_TILE]]


def tiny_llava_onevision(make_tokenizer: TokenizerFactory = tiny_tokenizer) -> tuple[LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor]:
    """A random LLaVA-OneVision with the real architecture (SigLIP tower, anyres tiling with the
    newline token, projector, Qwen2), 16 text layers, 28-pixel tiles and the tiny tokenizer."""
    tokenizer = make_tokenizer(["<|im_start|>", "<|im_end|>", IMAGE_TOKEN, VIDEO_TOKEN])
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=TINY_TILE,
        patch_size=14,
    )
    config = LlavaOnevisionConfig(
        vision_config=vision.to_dict(), text_config=tiny_text_config(Qwen2Config, tokenizer).to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        vision_feature_select_strategy="full", vision_feature_layer=-1, image_grid_pinpoints=TINY_PINPOINTS,
        vision_aspect_ratio="anyres_max_9",
    )
    model = seeded_init(lambda: LlavaOnevisionForConditionalGeneration(config))
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": TINY_TILE, "width": TINY_TILE}, image_grid_pinpoints=TINY_PINPOINTS,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    processor = LlavaOnevisionProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=FrameVideoProcessor(image_processor),
        num_image_tokens=(TINY_TILE // 14) ** 2, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=chatml_template(IMAGE_TOKEN, None),
    )
    return model, processor


@MODELS.register("llava_onevision")
class LlavaOnevisionAdapter:
    name = "llava_onevision"
    modality = "image"
    default_target_layers = (6, 7, 8)
    default_locore_layers = (9, 14)
    build_tiny = staticmethod(tiny_llava_onevision)  # (make_tokenizer) -> (model, processor)
    default_locore_beta = 0.15

    def load(self, checkpoint: str, dtype: torch.dtype, device: str, args: ModelArgs | None = None) -> LoadedModel:
        return load_model(self, checkpoint, dtype, device, LlavaOnevisionForConditionalGeneration, self.build_tiny, args)

    def process(
        self, processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], conversation: str | None = None
    ) -> BatchFeature:
        return chat_template_image_inputs(processor, prompts, visuals)

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        # The anyres newline features sit at <image> positions too, so the placeholder covers the span.
        return {loaded.model.config.image_token_id}
