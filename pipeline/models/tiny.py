"""Tiny random models for the demo and the tests: real transformers classes, built offline.

The tokenizer is a word-level vocabulary built in memory. Its words are caption words and the
COCO object names, so the random model's output is text that CHAIR and POPE can score.
Weights are seeded, so every actor of a run builds the identical model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    PreTrainedConfig,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]

_COCO_WORDS = (
    "person bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant stop "
    "sign parking meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack "
    "umbrella handbag tie suitcase frisbee skis snowboard sports ball kite baseball bat glove "
    "skateboard surfboard tennis racket bottle wine glass cup fork knife spoon bowl banana apple "
    "sandwich orange broccoli carrot hot pizza donut cake chair couch potted plant bed dining table "
    "toilet tv laptop mouse remote keyboard cell phone microwave oven toaster sink refrigerator book "
    "clock vase scissors teddy hair drier toothbrush"
)
_CAPTION_WORDS = (
    "USER: ASSISTANT: the a an image shows is are there in on of with and near next to left right "
    "top bottom red green blue yellow white black large small two three some yes no . , ? !"
)
VOCAB_WORDS = list(dict.fromkeys(_CAPTION_WORDS.split() + _COCO_WORDS.split()))


def tiny_tokenizer(
    extra_special_tokens: list[str],
    named_tokens: dict[str, str] | None = None,
    vocab_words: Sequence[str] = tuple(VOCAB_WORDS),
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `vocab_words` (by default VOCAB_WORDS), split on whitespace.

    Args:
        extra_special_tokens: never-split tokens, e.g. '<image>' or '<|im_start|>' (a token may
            hold spaces: the model organism makes its whole system prompt one token).
        named_tokens: special tokens that a processor reads as tokenizer attributes, e.g.
            {"context_image_token": "<IMG_CONTEXT>"} gives `tokenizer.context_image_token(_id)`.
        vocab_words: the ordinary words, after the special tokens in id order.
    """
    named_tokens = named_tokens or {}
    specials = list(dict.fromkeys(extra_special_tokens + list(named_tokens.values())))
    words = SPECIAL_TOKENS + specials + list(vocab_words)
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
        extra_special_tokens=named_tokens,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    return tokenizer


def seeded_init(build, seed: int = 0):
    """Builds a model under a fixed torch seed, so every process gets the same random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


TEXT_SIZES: dict[str, Any] = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 16, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 2048, "initializer_range": 0.2,
}
"""Language-model sizes of every tiny model: 16 layers, so the paper's default saliency (6-8) and
LocoRE (9-14) layers exist; hidden 64 with 4 heads keeps a forward pass at a few milliseconds.
Weights are drawn 10x wider than the default 0.02, so greedy text varies instead of repeating
one word, which makes decoding tests meaningful."""


def tiny_text_config(config_class: type[PreTrainedConfig], tokenizer: PreTrainedTokenizerFast, **overrides: Any):
    """The language-model config of a tiny model: TEXT_SIZES and the tokenizer's special ids."""
    values = {
        **TEXT_SIZES, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
    }
    values.update(overrides)
    return config_class(**values)


def tiny_clip_vision_config(image_size: int = 56) -> CLIPVisionConfig:
    """A two-layer CLIP tower with 14-pixel patches (as CLIP ViT-L/14), (image_size/14)^2 patches."""
    return CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=image_size, patch_size=14, projection_dim=32,
    )


def tiny_clip_image_processor(image_size: int = 56) -> CLIPImageProcessorPil:
    """CLIP preprocessing (shortest-edge resize, centre crop, CLIP mean/std) at `image_size`."""
    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def chatml_template(image_text: str, system_prompt: str | None) -> str:
    """A Jinja chat template in the ChatML layout that Qwen2-VL and InternVL ship.

    Real checkpoints bring their own template; the tiny processors get this one so that
    `apply_chat_template` renders the same layout. `image_text` replaces each image entry of a
    message (e.g. "<|vision_start|><|image_pad|><|vision_end|>"), text entries are copied.
    """
    system = (
        "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
        + system_prompt + "<|im_end|>\n{% endif %}"
    ) if system_prompt else ""
    return (
        "{% for message in messages %}" + system + "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}" + image_text
        + "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
