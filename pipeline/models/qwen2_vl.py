"""Qwen2-VL and Qwen2.5-VL (transformers `Qwen2VLForConditionalGeneration`,
`Qwen2_5_VLForConditionalGeneration`), e.g. Qwen/Qwen2-VL-7B-Instruct, Qwen/Qwen2.5-VL-7B-Instruct.

The two families share the processor, the ChatML chat template and the visual token layout
(`<|vision_start|>` + one `<|image_pad|>` per merged 2x2 patch + `<|vision_end|>`), so one module
registers both; they differ in the model classes and the vision tower's config.

Prompt: the checkpoint's own chat template (a tiny model gets the same ChatML layout):
"<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n
<|vision_start|><|image_pad|><|vision_end|>{prompt}<|im_end|>\\n<|im_start|>assistant\\n".

Layer defaults: the paper reports Qwen2-VL (28 layers) with LocoRE beta 0.20 but gives no layer
indices for it. We take LLaVA-1.5's choice, which the paper tuned on a 32-layer model: saliency
in layers 6-8, where image-text attention is still formed, and LocoRE in 9-14, the middle layers
that follow. For 28 layers these indices keep the same early-middle position (6-8 of 28 is 21-29%
of the depth, 9-14 is 32-50%), so we keep them as they are; a run config may override them.
Qwen2.5-VL (also 28 layers at 7B) takes the same defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    BatchFeature,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import (
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLVisionConfig,
)
from transformers.models.qwen2_vl.configuration_qwen2_vl import (
    Qwen2VLTextConfig,
    Qwen2VLVisionConfig,
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
    TEXT_SIZES,
    chatml_template,
    seeded_init,
    tiny_text_config,
    tiny_tokenizer,
)

SYSTEM_PROMPT = "You are a helpful assistant."
IMAGE_TEXT = "<|vision_start|><|image_pad|><|vision_end|>"
SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
TINY_IMAGE_PIXELS = 56 * 56  # 4x4 patches of 14 px, merged 2x2: four image tokens per image


def _tiny_vision_config(config_class: type) -> Any:
    """A two-block vision tower with Qwen's 14-px patches, 2-frame temporal patches, 2x2 merge."""
    sizes = {"depth": 2, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    text_width = TEXT_SIZES["hidden_size"]  # the merger projects into the text width
    if config_class is Qwen2_5_VLVisionConfig:
        # Qwen2.5-VL's window attention: one full-attention block, a window of one merged patch grid.
        return config_class(
            **sizes, hidden_size=32, intermediate_size=64, out_hidden_size=text_width, window_size=56,
            fullatt_block_indexes=[1],
        )
    # In Qwen2-VL's vision config `embed_dim` is the tower's width, `hidden_size` the merger's output.
    return config_class(**sizes, embed_dim=32, hidden_size=text_width, mlp_ratio=2)


def tiny_qwen(
    model_class: type, config_class: type, text_class: type, vision_class: type,
    make_tokenizer: TokenizerFactory = tiny_tokenizer,
) -> tuple[Any, Qwen2VLProcessor]:
    """A random Qwen2-VL or Qwen2.5-VL with the real architecture (M-RoPE, merged patches), 16
    text layers, a 56-pixel vision input and a word-level tokenizer; builds in about a second."""
    tokenizer = make_tokenizer(SPECIAL_TOKENS)
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
    )}
    # M-RoPE splits each head's rotary half (head_dim 16 / 2 = 8) into time, height, width parts.
    text = tiny_text_config(text_class, tokenizer, rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3]})
    config = config_class(text_config=text.to_dict(), vision_config=_tiny_vision_config(vision_class).to_dict(), **ids)
    model = seeded_init(lambda: model_class(config))
    image_processor = Qwen2VLImageProcessorPil(min_pixels=TINY_IMAGE_PIXELS, max_pixels=TINY_IMAGE_PIXELS)
    processor = Qwen2VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=FrameVideoProcessor(image_processor),
        chat_template=chatml_template(IMAGE_TEXT, SYSTEM_PROMPT),
    )
    return model, processor


class QwenVLAdapter:
    """The shared adapter body of the Qwen-VL families (also Qwen3-VL's, pipeline/models/qwen3_vl.py);
    the registered classes name the model classes."""

    name: str
    model_class: type
    tiny_classes: tuple[type, type, type]  # config, text config, vision config
    modality = "image"
    default_target_layers = (6, 7, 8)
    default_locore_layers = (9, 14)
    default_locore_beta = 0.20  # the paper's value for Qwen2-VL
    processor_args = ("min_pixels", "max_pixels")

    def load(self, checkpoint: str, dtype: torch.dtype, device: str, args: ModelArgs | None = None) -> LoadedModel:
        return load_model(self, checkpoint, dtype, device, self.model_class, self.build_tiny, args)

    def build_tiny(self, make_tokenizer: TokenizerFactory = tiny_tokenizer) -> tuple[Any, Qwen2VLProcessor]:
        """The family's tiny random model and processor (make_tokenizer: see pipeline.models.tiny)."""
        return tiny_qwen(self.model_class, *self.tiny_classes, make_tokenizer)

    def process(
        self, processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], conversation: str | None = None
    ) -> BatchFeature:
        return chat_template_image_inputs(processor, prompts, visuals)

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        config = loaded.model.config
        return {config.image_token_id, config.video_token_id, config.vision_start_token_id, config.vision_end_token_id}


@MODELS.register("qwen2_vl")
class Qwen2VLAdapter(QwenVLAdapter):
    name = "qwen2_vl"
    model_class = Qwen2VLForConditionalGeneration
    tiny_classes = (Qwen2VLConfig, Qwen2VLTextConfig, Qwen2VLVisionConfig)


@MODELS.register("qwen2_5_vl")
class Qwen2_5_VLAdapter(QwenVLAdapter):
    name = "qwen2_5_vl"
    model_class = Qwen2_5_VLForConditionalGeneration
    tiny_classes = (Qwen2_5_VLConfig, Qwen2_5_VLTextConfig, Qwen2_5_VLVisionConfig)
