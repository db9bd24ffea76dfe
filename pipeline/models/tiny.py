"""Tiny random models for the demo and the tests: real transformers classes, built offline.

Two tokenizers, both built in memory over caption words and the COCO object names, so the random
model's output is text that CHAIR and POPE can score: `tiny_tokenizer`, a word-level vocabulary
(one token per word; the `tiny` checkpoints use it), and `tiny_bpe_tokenizer`, a subword BPE
trained in memory the way the real families' tokenizers are built (byte-level as Qwen's and
InternVL's, or SentencePiece-style "▁" pieces with a leading <s> as LLaMA/Vicuna's), in which long
object words such as "giraffe" or "toothbrush" split into several pieces. Checkpoint-shaped test
fixtures (tests/checkpoints.py) use the BPE one. Weights are seeded, so every actor of a run
builds the identical model.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
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


TokenizerFactory = Callable[[list[str], "dict[str, str] | None"], PreTrainedTokenizerFast]
"""(extra_special_tokens, named_tokens) -> tokenizer: what a tiny model builder takes to make its
tokenizer (`tiny_tokenizer` by default, `tiny_bpe_tokenizer` for checkpoint-shaped fixtures)."""

BPE_VOCAB_SIZE = 420
"""Base alphabet plus a few hundred merges: enough for the short caption words to be one token and
few enough that rare long object words stay split (see `tiny_bpe_tokenizer`)."""


def _bpe_corpus() -> list[str]:
    """Training text: caption words often (they become whole tokens), object names once each."""
    caption = " ".join(_CAPTION_WORDS.split()[2:])
    return [caption] * 50 + [f"a {word} ." for word in _COCO_WORDS.split()]


def tiny_bpe_tokenizer(
    extra_special_tokens: list[str],
    named_tokens: dict[str, str] | None = None,
    style: Literal["byte_level", "sentencepiece"] = "byte_level",
) -> PreTrainedTokenizerFast:
    """A subword BPE tokenizer trained in memory, laid out like a real family's.

    Args:
        extra_special_tokens: never-split tokens, e.g. '<image>' or '<|im_start|>'.
        named_tokens: special tokens a processor reads as tokenizer attributes (see tiny_tokenizer).
        style: "byte_level" (GPT-2/Qwen2: bytes mapped to characters, a space is part of the next
            piece, no BOS) or "sentencepiece" (LLaMA/Vicuna: words start with "▁", a <s> opens
            every sequence).
    """
    named_tokens = named_tokens or {}
    specials = list(dict.fromkeys(extra_special_tokens + list(named_tokens.values())))
    backend = Tokenizer(models.BPE(unk_token=None if style == "byte_level" else "<unk>"))
    if style == "byte_level":
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        # Printable ASCII and newline (a prompt's "USER:" or "\n"), with the word marker for spaces.
        alphabet = sorted(set(string.printable) - set(" \t\r\x0b\x0c") | {"\u2581"})
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE + len(alphabet) - 256, special_tokens=SPECIAL_TOKENS + specials,
        initial_alphabet=alphabet, show_progress=False,
    )
    backend.train_from_iterator(_bpe_corpus(), trainer=trainer)
    if style == "sentencepiece":
        bos = backend.token_to_id("<s>")
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        padding_side="left", extra_special_tokens=named_tokens,
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
