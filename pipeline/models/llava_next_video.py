"""LLaVA-NeXT-Video (transformers `LlavaNextVideoForConditionalGeneration`),
llava-hf/LLaVA-NeXT-Video-7B-hf (also -7B-DPO-hf, -34B-hf).

Modality "video": `Visual.images` holds the sampled frames, passed as the processor's `videos`
input; each frame's CLIP patch grid is average-pooled with stride 2, so a 336-pixel frame gives
(336 / 14)^2 / 4 = 144 `<video>` tokens.

Prompt: what the checkpoint's chat template renders for one video and a question,
"USER: <video>\\n{prompt} ASSISTANT:".

Layer defaults: the paper does not evaluate this family. The 7B checkpoints' language model is a
32-layer Vicuna-7B, as LLaVA-1.5-7B's, so we take LLaVA-1.5's defaults: saliency 6-8, LocoRE 9-14
with beta 0.15.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    BatchFeature,
    LlamaConfig,
    LlavaNextImageProcessorPil,
    LlavaNextVideoConfig,
    LlavaNextVideoForConditionalGeneration,
    LlavaNextVideoProcessor,
)

from pipeline.api import LoadedModel, Visual
from pipeline.config import ModelArgs
from pipeline.models import MODELS
from pipeline.models._common import (
    FrameVideoProcessor,
    fixed_template_video_inputs,
    load_model,
)
from pipeline.models.tiny import (
    TokenizerFactory,
    seeded_init,
    tiny_clip_image_processor,
    tiny_clip_vision_config,
    tiny_text_config,
    tiny_tokenizer,
)

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"
PROMPT_TEMPLATE = f"USER: {VIDEO_TOKEN}\n{{prompt}} ASSISTANT:"  # the model card's conversation
TINY_IMAGE_SIZE = 56


def tiny_llava_next_video(make_tokenizer: TokenizerFactory = tiny_tokenizer) -> tuple[LlavaNextVideoForConditionalGeneration, LlavaNextVideoProcessor]:
    """A random LLaVA-NeXT-Video with the real architecture (CLIP tower, 2x2 average pooling of each
    frame, projector), 16 text layers, 56-pixel frames (4 tokens each) and a word-level tokenizer."""
    tokenizer = make_tokenizer([IMAGE_TOKEN, VIDEO_TOKEN])
    pinpoints = [[TINY_IMAGE_SIZE, TINY_IMAGE_SIZE], [TINY_IMAGE_SIZE, 2 * TINY_IMAGE_SIZE]]
    config = LlavaNextVideoConfig(
        vision_config=tiny_clip_vision_config(TINY_IMAGE_SIZE).to_dict(),
        text_config=tiny_text_config(LlamaConfig, tokenizer).to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        image_grid_pinpoints=pinpoints, vision_feature_layer=-2, vision_feature_select_strategy="default",
        spatial_pool_mode="average", spatial_pool_stride=2,
    )
    model = seeded_init(lambda: LlavaNextVideoForConditionalGeneration(config))
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": TINY_IMAGE_SIZE}, crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextVideoProcessor(
        video_processor=FrameVideoProcessor(tiny_clip_image_processor(TINY_IMAGE_SIZE)),
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )
    return model, processor


@MODELS.register("llava_next_video")
class LlavaNextVideoAdapter:
    name = "llava_next_video"
    modality = "video"
    default_target_layers = (6, 7, 8)
    default_locore_layers = (9, 14)
    build_tiny = staticmethod(tiny_llava_next_video)  # (make_tokenizer) -> (model, processor)
    default_locore_beta = 0.15

    def load(self, checkpoint: str, dtype: torch.dtype, device: str, args: ModelArgs | None = None) -> LoadedModel:
        return load_model(self, checkpoint, dtype, device, LlavaNextVideoForConditionalGeneration, self.build_tiny, args)

    def process(
        self, processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], conversation: str | None = None
    ) -> BatchFeature:
        return fixed_template_video_inputs(processor, prompts, visuals, PROMPT_TEMPLATE)

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        return {loaded.model.config.image_token_id, loaded.model.config.video_token_id}
