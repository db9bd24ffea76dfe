"""Tiny random models for the demo and the tests: real transformers classes, built offline.

The tokenizer is a word-level vocabulary built in memory. Its words are caption words and the
COCO object names, so the random model's output is text that CHAIR and POPE can score.
Weights are seeded, so every actor of a run builds the identical model.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

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


def tiny_tokenizer(extra_special_tokens: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over VOCAB_WORDS; `extra_special_tokens` are e.g. '<image>'."""
    words = SPECIAL_TOKENS + extra_special_tokens + VOCAB_WORDS
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
    )
    tokenizer.add_special_tokens({"additional_special_tokens": extra_special_tokens})
    return tokenizer


def seeded_init(build, seed: int = 0):
    """Builds a model under a fixed torch seed, so every process gets the same random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
