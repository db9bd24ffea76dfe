"""LLaVA-1.5's conversation template: a recorded per-run choice, vicuna_v1 by default."""

from dataclasses import replace

import pytest
import torch
from PIL import Image

from pipeline.api import Visual
from pipeline.config import ConfigError, build_config
from pipeline.models import MODELS
from pipeline.models.llava import CONVERSATIONS
from pipeline.model_inputs import build_inputs

# llava/conversation.py at haotian-liu/LLaVA@c121f04: conv_vicuna_v1 / conv_llava_v1, one turn
# with "<image>\n" + question, then get_prompt() (SeparatorStyle.TWO, sep " ").
VICUNA_V1 = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
             "helpful, detailed, and polite answers to the user's questions. USER: <image>\nQ ASSISTANT:")
LLAVA_V1 = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
            "helpful, detailed, and polite answers to the human's questions. USER: <image>\nQ ASSISTANT:")
HF_CHAT = "USER: <image>\nQ ASSISTANT:"  # llava-hf/llava-1.5-7b-hf's chat template


def test_templates_are_llavas():
    assert CONVERSATIONS["vicuna_v1"].format(prompt="Q") == VICUNA_V1
    assert CONVERSATIONS["llava_v1"].format(prompt="Q") == LLAVA_V1


@pytest.mark.parametrize("conversation, text", [(None, VICUNA_V1), ("vicuna_v1", VICUNA_V1),
                                                ("llava_v1", LLAVA_V1), ("hf_chat_template", HF_CHAT)])
def test_build_inputs_uses_the_runs_conversation(conversation, text):
    adapter = MODELS.get("llava15")()
    loaded = replace(adapter.load("tiny", torch.float32, "cpu"), conversation=conversation)
    visual = Visual(images=[Image.new("RGB", (56, 56))], modality="image")
    inputs = build_inputs(loaded, ["Q"], [visual])
    expected = loaded.processor(images=[visual.images[0]], text=[text], return_tensors="pt")
    assert torch.equal(inputs["input_ids"], expected["input_ids"])


def test_conversation_is_recorded_and_enters_the_run_id():
    base = {"benchmark": {"name": "pope", "root": "/data/pope"}}
    default = build_config(base)
    assert default.model.conversation == "vicuna_v1"  # resolved, so config.yaml records it
    llava_v1 = build_config(base, ["model.conversation=llava_v1"])
    assert llava_v1.run_id != default.run_id
    assert build_config(base, ["model.conversation=vicuna_v1"]).run_id == default.run_id
    assert build_config(base, ["model.name=qwen2_vl"]).model.conversation is None
    with pytest.raises(ConfigError, match="has no conversation 'vicuna'; choose from: vicuna_v1, llava_v1"):
        build_config(base, ["model.conversation=vicuna"])
    with pytest.raises(ConfigError, match="model 'qwen2_vl' has no conversation 'llava_v1'"):
        build_config(base, ["model.name=qwen2_vl", "model.conversation=llava_v1"])
