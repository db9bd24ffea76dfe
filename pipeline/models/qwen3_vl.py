"""Qwen3-VL (transformers `Qwen3VLForConditionalGeneration`), e.g. Qwen/Qwen3-VL-2B/4B/8B/32B-Instruct.

The dense Qwen3-VL checkpoints; the MoE ones (Qwen3-VL-30B-A3B, -235B-A22B) are a different class
(`Qwen3VLMoeForConditionalGeneration`) and not registered here. Against Qwen2.5-VL the vision
tower takes 16-pixel patches (32-pixel merged tokens), normalises with mean = std = 0.5, feeds
"DeepStack" features of intermediate vision blocks into the first decoder layers, and the text
model interleaves its M-RoPE sections. The visual token layout is Qwen2-VL's
(`<|vision_start|>` + one `<|image_pad|>` per merged patch + `<|vision_end|>`), so the adapter body
is the Qwen2-VL one.

Prompt: the checkpoint's own chat template; unlike Qwen2-VL's it adds no default system turn:
"<|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>{prompt}<|im_end|>\\n<|im_start|>assistant\\n".

Layer defaults: not in the paper (it predates Qwen3-VL). We keep the Qwen2-VL choice (saliency
6-8, LocoRE 9-14, beta 0.20): for the 28-layer 2B model that is the same early-middle depth as for
Qwen2-VL-7B; in the 36-layer 4B/8B models it sits a little earlier (17-25 % and 25-42 % of the
depth). DeepStack adds visual features in decoder layers 0-2, before all of these layers.
"""

from __future__ import annotations

from transformers import (
    Qwen2VLImageProcessorPil,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)
from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLTextConfig, Qwen3VLVisionConfig

from pipeline.models import MODELS
from pipeline.models._common import FrameVideoProcessor
from pipeline.models.qwen2_vl import IMAGE_TEXT, SPECIAL_TOKENS, QwenVLAdapter
from pipeline.models.tiny import (
    TEXT_SIZES,
    TokenizerFactory,
    chatml_template,
    seeded_init,
    tiny_text_config,
    tiny_tokenizer,
)

TINY_IMAGE_PIXELS = 64 * 64  # 4x4 patches of 16 px, merged 2x2: four image tokens per image


def tiny_qwen3_vl(make_tokenizer: TokenizerFactory = tiny_tokenizer) -> tuple[Qwen3VLForConditionalGeneration, Qwen3VLProcessor]:
    """A random Qwen3-VL with the real architecture (16-px patches, DeepStack, interleaved M-RoPE),
    16 text layers, a 64-pixel vision input and the tiny tokenizer."""
    tokenizer = make_tokenizer(SPECIAL_TOKENS)
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
    )}
    head_dim = TEXT_SIZES["hidden_size"] // TEXT_SIZES["num_attention_heads"]
    text = tiny_text_config(
        Qwen3VLTextConfig, tokenizer, head_dim=head_dim,
        rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True},
    )
    vision = Qwen3VLVisionConfig(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, spatial_merge_size=2,
        temporal_patch_size=2, out_hidden_size=TEXT_SIZES["hidden_size"], num_position_embeddings=16,
        deepstack_visual_indexes=[0],
    )
    config = Qwen3VLConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), **ids)
    model = seeded_init(lambda: Qwen3VLForConditionalGeneration(config))
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=TINY_IMAGE_PIXELS,
        max_pixels=TINY_IMAGE_PIXELS, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    processor = Qwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=FrameVideoProcessor(image_processor),
        chat_template=chatml_template(IMAGE_TEXT, None),
    )
    return model, processor


@MODELS.register("qwen3_vl")
class Qwen3VLAdapter(QwenVLAdapter):
    name = "qwen3_vl"
    model_class = Qwen3VLForConditionalGeneration
    build_tiny = staticmethod(tiny_qwen3_vl)  # (make_tokenizer) -> (model, processor)


