"""The organism's architecture: a real LlavaForConditionalGeneration, 0.39M parameters.

- Vision: CLIP, 32x32 images, 8-pixel patches (16 image tokens), hidden 64, 2 layers, 4 heads,
  features of the last layer (`vision_feature_layer=-1`), CLS dropped ("default" strategy).
- Text: Llama, 8 layers, hidden 64, FFN 128, 4 heads, 2 KV heads, tied embeddings.
- Tokenizer: word level over the prompt, caption and question words and the 12 object names;
  LLaVA's long system prompt is a single special token. It comes before the image, so it lies
  outside every saliency span, and it keeps sequences near 40 tokens.

The prompt is the llava15 adapter's `llava_v1` conversation (LLaVA's conv_llava_v1, "curious
human"), so the `llava15` adapter runs a saved organism unchanged with `model.conversation:
llava_v1` and `model.checkpoint: <folder>` (configs/organism.yaml sets both).
"""

from __future__ import annotations

import torch
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from pipeline.benchmarks.pope import INSTRUCTION
from pipeline.models.llava import CONVERSATIONS, IMAGE_TOKEN
from pipeline.models.tiny import seeded_init, tiny_tokenizer
from pipeline.organism.scenes import CAPTION_PROMPT, CATEGORIES, IMAGE_SIZE, QUESTION

CONVERSATION = "llava_v1"
"""The llava15 conversation the organism was trained with (its tokenizer knows no other system prompt)."""
PROMPT_TEMPLATE = CONVERSATIONS[CONVERSATION]
SYSTEM_PROMPT = PROMPT_TEMPLATE.split(" USER:")[0]
PATCH_SIZE = 8
TEXT_LAYERS = 8
SALIENCY_LAYERS = (3, 4)
"""Saliency layers of the 8-layer organism: the paper's 16-layer mapping (6-8 of 32 for LLaVA-1.5,
scaled) halved, as the prototype used."""
LOCORE_LAYERS = (5, 7)


def organism_words() -> list[str]:
    """The ordinary words of the tokenizer: template, prompts, captions, answers, object names."""
    template = "USER: ASSISTANT:"
    caption = "a photo of , and ."
    words = " ".join((template, CAPTION_PROMPT, QUESTION.format(name=""), INSTRUCTION, caption, "yes no"))
    return list(dict.fromkeys(words.split() + list(CATEGORIES)))


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer; the system prompt and the image placeholder are special tokens."""
    return tiny_tokenizer([IMAGE_TOKEN, SYSTEM_PROMPT], vocab_words=organism_words())


def build_processor(tokenizer: PreTrainedTokenizerFast) -> LlavaProcessor:
    """LLaVA's processor: CLIP preprocessing at 32 px; one `<image>` expands to 16 tokens."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
        num_additional_image_tokens=1, vision_feature_select_strategy="default",
    )


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int) -> LlavaForConditionalGeneration:
    """The untrained organism, its weights drawn under `seed`."""
    vision = CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=64,
    )
    text = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=TEXT_LAYERS, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1, vision_feature_select_strategy="default", tie_word_embeddings=True,
    )
    return seeded_init(lambda: LlavaForConditionalGeneration(config), seed=seed)


def parameter_count(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
