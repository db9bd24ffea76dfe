"""InternVL (transformers' native `InternVLForConditionalGeneration`), e.g. the
OpenGVLab/InternVL3-1B-hf ... InternVL3-78B-hf and InternVL2.5-*-hf checkpoints.

The paper's "Intern-VL-7B/13B" rows are, by their sizes, the first-generation LLaVA-style
InternVL-Chat checkpoints (InternViT-6B with a Vicuna-7B/13B language model,
OpenGVLab/InternVL-Chat-ViT-6B-Vicuna-*), which are remote-code models that this class does not
load; results on the -hf checkpoints are therefore not the paper's InternVL numbers.

Prompt: the checkpoint's own ChatML chat template; the image entry renders as "<IMG_CONTEXT>\\n",
which the processor expands to "<img>" + image_seq_length x "<IMG_CONTEXT>" per tile + "</img>".
The tiny model uses the same layout without a system turn.

Layer defaults: the paper gives none for InternVL. We take LLaVA-1.5's (saliency 6-8, LocoRE 9-14,
beta 0.15): the 7B/13B checkpoints the paper used are LLaVA-style Vicuna models like LLaVA-1.5,
and the -hf 8B checkpoint's 28-layer Qwen2.5 language model puts these layers at the same
early-middle depth as for Qwen2-VL (see pipeline/models/qwen2_vl.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    BatchFeature,
    GotOcr2ImageProcessorPil,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    InternVLVisionConfig,
    Qwen2Config,
)

from pipeline.api import LoadedModel, Visual
from pipeline.config import ModelArgs
from pipeline.models import MODELS
from pipeline.models._common import (
    FrameVideoProcessor,
    chat_template_image_inputs,
    load_model,
)
from pipeline.models.tiny import (
    TokenizerFactory,
    chatml_template,
    seeded_init,
    tiny_text_config,
    tiny_tokenizer,
)

IMAGE_TEXT = "<IMG_CONTEXT>\n"
NAMED_TOKENS = {
    "start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
TINY_IMAGE_SIZE = 56
TINY_IMAGE_SEQ_LENGTH = 4  # (56 / 14)^2 patches, pixel-shuffled by downsample_ratio 0.5: 2 x 2


def tiny_internvl(make_tokenizer: TokenizerFactory = tiny_tokenizer) -> tuple[InternVLForConditionalGeneration, InternVLProcessor]:
    """A random InternVL with the real architecture (InternViT, pixel shuffle, MLP projector, Qwen2
    language model), 16 text layers, 56-pixel tiles and a word-level tokenizer."""
    tokenizer = make_tokenizer(["<|im_start|>", "<|im_end|>"], NAMED_TOKENS)
    vision = InternVLVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=[TINY_IMAGE_SIZE, TINY_IMAGE_SIZE], patch_size=[14, 14],
    )
    config = InternVLConfig(
        vision_config=vision.to_dict(), text_config=tiny_text_config(Qwen2Config, tokenizer).to_dict(),
        image_token_id=tokenizer.context_image_token_id, image_seq_length=TINY_IMAGE_SEQ_LENGTH,
        downsample_ratio=0.5, vision_feature_layer=-1,
    )
    model = seeded_init(lambda: InternVLForConditionalGeneration(config))
    # The processor always tiles (as the real checkpoints do, up to 12 tiles plus a thumbnail);
    # at most two tiles keep the tiny sequences short while still exercising the tiling.
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}, crop_to_patches=True, max_patches=2,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    processor = InternVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=FrameVideoProcessor(image_processor),
        image_seq_length=TINY_IMAGE_SEQ_LENGTH, chat_template=chatml_template(IMAGE_TEXT, None),
    )
    return model, processor


@MODELS.register("internvl")
class InternVLAdapter:
    name = "internvl"
    modality = "image"
    default_target_layers = (6, 7, 8)
    default_locore_layers = (9, 14)
    build_tiny = staticmethod(tiny_internvl)  # (make_tokenizer) -> (model, processor)
    default_locore_beta = 0.15
    processor_args = ("max_patches",)

    def load(self, checkpoint: str, dtype: torch.dtype, device: str, args: ModelArgs | None = None) -> LoadedModel:
        return load_model(self, checkpoint, dtype, device, InternVLForConditionalGeneration, self.build_tiny, args)

    def process(
        self, processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], conversation: str | None = None
    ) -> BatchFeature:
        return chat_template_image_inputs(processor, prompts, visuals)

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        # <img> and </img> enclose each tile's features, so they belong to the image span.
        tokenizer: Any = loaded.tokenizer
        return {loaded.model.config.image_token_id, tokenizer.start_image_token_id, tokenizer.end_image_token_id}
