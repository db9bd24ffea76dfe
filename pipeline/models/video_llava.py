"""Video-LLaVA (transformers `VideoLlavaForConditionalGeneration`), LanguageBind/Video-LLaVA-7B-hf.

Modality "video": `Visual.images` holds the sampled frames (the model was trained on 8 frames),
passed as the processor's `videos` input; every frame becomes (224 / 14)^2 + 1 `<video>` tokens
(patches plus CLS) at the checkpoint's 224-pixel resolution.

Prompt: the format of the model card, "USER: <video>\\n{prompt} ASSISTANT:".

Layer defaults: the paper reports Video-LLaVA results without layer indices. Its language model is
a 32-layer Vicuna-7B, as LLaVA-1.5-7B's, so we take LLaVA-1.5's defaults: saliency 6-8, LocoRE
9-14 with beta 0.15.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    BatchFeature,
    LlamaConfig,
    VideoLlavaConfig,
    VideoLlavaForConditionalGeneration,
    VideoLlavaProcessor,
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


def tiny_video_llava(make_tokenizer: TokenizerFactory = tiny_tokenizer) -> tuple[VideoLlavaForConditionalGeneration, VideoLlavaProcessor]:
    """A random Video-LLaVA with the real architecture (separate CLIP image and video towers, one
    projector), 16 text layers, 56-pixel frames (17 tokens each) and a word-level tokenizer."""
    tokenizer = make_tokenizer([IMAGE_TOKEN, VIDEO_TOKEN])
    config = VideoLlavaConfig(
        vision_config=tiny_clip_vision_config().to_dict(),
        text_config=tiny_text_config(LlamaConfig, tokenizer).to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    model = seeded_init(lambda: VideoLlavaForConditionalGeneration(config))
    image_processor = tiny_clip_image_processor()
    processor = VideoLlavaProcessor(
        image_processor=image_processor, video_processor=FrameVideoProcessor(image_processor), tokenizer=tokenizer,
        patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )
    return model, processor


@MODELS.register("video_llava")
class VideoLlavaAdapter:
    name = "video_llava"
    modality = "video"
    default_target_layers = (6, 7, 8)
    default_locore_layers = (9, 14)
    build_tiny = staticmethod(tiny_video_llava)  # (make_tokenizer) -> (model, processor)
    default_locore_beta = 0.15

    def load(self, checkpoint: str, dtype: torch.dtype, device: str, args: ModelArgs | None = None) -> LoadedModel:
        return load_model(self, checkpoint, dtype, device, VideoLlavaForConditionalGeneration, self.build_tiny, args)

    def process(
        self, processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], conversation: str | None = None
    ) -> BatchFeature:
        return fixed_template_video_inputs(processor, prompts, visuals, PROMPT_TEMPLATE)

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        return {loaded.model.config.image_token_id, loaded.model.config.video_token_id}
