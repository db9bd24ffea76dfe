"""VideoLLaMA3 (transformers' native `VideoLlama3ForConditionalGeneration`), the successor of the
paper's Video-LLaMA2 from the same group (DAMO-NLP-SG), on checkpoints converted to this class.

A SigLIP-based tower that takes any resolution (14-pixel patches, 2D RoPE, no tiling) and a
Qwen2.5 language model; each image becomes one `<|image_pad|>` per patch (images are not merged,
`merge_size` 1), in one contiguous run.

Modality "image" only. The family's video input goes through `VideoLlama3VideoProcessor`, which
needs torchvision (it does not import beside the CPU torch pinned here), merges 2x2 patches,
drops frame tokens that barely change (`video_compression_mask`) and writes a "Time t s:" prefix
per frame; none of that can be built or tested here, so video benchmarks cannot use this adapter
yet. Image benchmarks (CHAIR, POPE, MME, ...) run as with any image family.

Prompt: the checkpoint's own chat template (ChatML, no default system turn in the tiny one):
"<|im_start|>user\\n<|image_pad|>\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n" before expansion.

Layer defaults: not in the paper, which reports Video-LLaMA2 without layer settings. The 7B
model's 28-layer Qwen2.5 gets the Qwen2-VL depth choice (saliency 6-8, LocoRE 9-14) with
LLaVA-1.5's beta 0.15.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    BatchFeature,
    Qwen2Config,
    VideoLlama3Config,
    VideoLlama3ForConditionalGeneration,
    VideoLlama3ImageProcessorPil,
    VideoLlama3Processor,
)
from transformers.models.video_llama_3.configuration_video_llama_3 import VideoLlama3VisionConfig

from pipeline.api import LoadedModel, Visual
from pipeline.config import ModelArgs
from pipeline.models import MODELS
from pipeline.models._common import FrameVideoProcessor, chat_template_image_inputs, load_model
from pipeline.models.tiny import TokenizerFactory, chatml_template, seeded_init, tiny_text_config, tiny_tokenizer

IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
TINY_IMAGE_PIXELS = 56 * 56  # about 16 patches of 14 px per image


def tiny_video_llama3(make_tokenizer: TokenizerFactory = tiny_tokenizer) -> tuple[VideoLlama3ForConditionalGeneration, VideoLlama3Processor]:
    """A random VideoLLaMA3 with the real architecture (any-resolution SigLIP tower with 2D RoPE,
    projector, Qwen2 text model), 16 text layers, ~56-pixel images and the tiny tokenizer."""
    tokenizer = make_tokenizer(["<|im_start|>", "<|im_end|>", IMAGE_TOKEN, VIDEO_TOKEN])
    vision = VideoLlama3VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14
    )
    config = VideoLlama3Config(
        text_config=tiny_text_config(Qwen2Config, tokenizer).to_dict(), vision_config=vision.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
    )
    model = seeded_init(lambda: VideoLlama3ForConditionalGeneration(config))
    image_processor = VideoLlama3ImageProcessorPil(min_pixels=TINY_IMAGE_PIXELS, max_pixels=TINY_IMAGE_PIXELS)
    # The processor requires a video processor; this one is never called (image modality).
    processor = VideoLlama3Processor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=FrameVideoProcessor(image_processor),
        chat_template=chatml_template(IMAGE_TOKEN + "\n", None),
    )
    return model, processor


@MODELS.register("video_llama3")
class VideoLlama3Adapter:
    name = "video_llama3"
    modality = "image"
    default_target_layers = (6, 7, 8)
    default_locore_layers = (9, 14)
    build_tiny = staticmethod(tiny_video_llama3)  # (make_tokenizer) -> (model, processor)
    default_locore_beta = 0.15
    processor_args = ("min_pixels", "max_pixels")

    def load(self, checkpoint: str, dtype: torch.dtype, device: str, args: ModelArgs | None = None) -> LoadedModel:
        return load_model(self, checkpoint, dtype, device, VideoLlama3ForConditionalGeneration, self.build_tiny, args)

    def process(
        self, processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], conversation: str | None = None
    ) -> BatchFeature:
        return chat_template_image_inputs(processor, prompts, visuals)

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        return {loaded.model.config.image_token_id, loaded.model.config.video_token_id}
