"""LLaVA-1.5 (transformers `LlavaForConditionalGeneration`), e.g. llava-hf/llava-1.5-7b-hf.

Prompt (`model.conversation`, recorded in the run id):
- `vicuna_v1` (default): LLaVA's `conv_vicuna_v1`, which every LLaVA-1.5 eval script passes
  (`--conv-mode vicuna_v1`), so it reproduces the published numbers: "A chat between a curious
  user ... the user's questions. USER: <image>\\n{prompt} ASSISTANT:".
- `llava_v1`: LLaVA's `conv_llava_v1`, the same with "human" for "user" (halleval's template
  before this option existed).
- `hf_chat_template`: the checkpoint's own chat template (llava-hf's renders
  "USER: <image>\\n{prompt} ASSISTANT:", no system prompt).
Defaults from the paper: saliency layers 6-8, LocoRE layers 9-14 with beta 0.15.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    BatchFeature,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from pipeline.api import LoadedModel, Visual
from pipeline.config import ModelArgs
from pipeline.models import MODELS
from pipeline.models._common import chat_template_image_inputs, load_model
from pipeline.models.tiny import TokenizerFactory, seeded_init, tiny_tokenizer

IMAGE_TOKEN = "<image>"


def _llava_conversation(asker: str) -> str:
    """LLaVA's SeparatorStyle.TWO prompt for one image turn: system, sep " ", roles USER/ASSISTANT."""
    system = (
        f"A chat between a curious {asker} and an artificial intelligence assistant. "
        f"The assistant gives helpful, detailed, and polite answers to the {asker}'s questions."
    )
    return f"{system} USER: {IMAGE_TOKEN}\n{{prompt}} ASSISTANT:"


# llava/conversation.py: conv_vicuna_v1 ("user") and conv_llava_v1 ("human").
CONVERSATIONS = {"vicuna_v1": _llava_conversation("user"), "llava_v1": _llava_conversation("human")}
HF_CHAT_TEMPLATE = "hf_chat_template"
# llava-hf/llava-1.5-*-hf's chat_template, given to the tiny model so every option runs offline.
LLAVA_HF_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != "
    "'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr("
    "'type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def tiny_llava(make_tokenizer: TokenizerFactory = tiny_tokenizer) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A random LLaVA with the real architecture, 16 text layers (so the paper's layer defaults
    exist), a 56-pixel CLIP tower and a word-level tokenizer; builds in well under a second."""
    tokenizer = make_tokenizer([IMAGE_TOKEN])
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=56, patch_size=14, projection_dim=32,
    )
    text = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=16, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.2,  # wider than the default 0.02, so greedy text varies (not one word repeated)
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=image_token_id,
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    model = seeded_init(lambda: LlavaForConditionalGeneration(config))
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
        num_additional_image_tokens=1, vision_feature_select_strategy="default",
        chat_template=LLAVA_HF_CHAT_TEMPLATE,
    )
    return model, processor


@MODELS.register("llava15")
class Llava15Adapter:
    name = "llava15"
    modality = "image"
    default_target_layers = (6, 7, 8)
    default_locore_layers = (9, 14)
    build_tiny = staticmethod(tiny_llava)  # (make_tokenizer) -> (model, processor)
    default_locore_beta = 0.15
    conversations = (*CONVERSATIONS, HF_CHAT_TEMPLATE)
    default_conversation = "vicuna_v1"

    def load(self, checkpoint: str, dtype: torch.dtype, device: str, args: ModelArgs | None = None) -> LoadedModel:
        return load_model(self, checkpoint, dtype, device, LlavaForConditionalGeneration, self.build_tiny, args)

    def process(
        self, processor: Any, prompts: Sequence[str], visuals: Sequence[Visual], conversation: str | None = None
    ) -> BatchFeature:
        conversation = conversation or self.default_conversation
        if conversation == HF_CHAT_TEMPLATE:
            return chat_template_image_inputs(processor, prompts, visuals)
        template = CONVERSATIONS[conversation]
        return processor(
            images=[visual.images[0] for visual in visuals],
            text=[template.format(prompt=p) for p in prompts],
            padding=True, return_tensors="pt",
        )

    def visual_token_ids(self, loaded: LoadedModel) -> set[int]:
        return {loaded.model.config.image_token_id}
