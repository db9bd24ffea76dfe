"""halleval's DoLa against Hugging Face's own, token for token.

The reference is huggingface/transformers@v4.55.4's `_dola_decoding`
(src/transformers/generation/utils.py), run in a separate venv by
tests/fixtures/references/make_dola_reference.py on the tiny LLaVA-1.5 checkpoint in
tests/fixtures/references/dola_llava/ and the inputs halleval's adapter built
(dola_inputs.pt); its tokens are in dola_expected.json (tests/fixtures/references/README.md says
how to regenerate them). Here the same checkpoint is loaded through the LLaVA adapter and decoded
by the registered `dola` method on halleval's decode loop, batch 1, as the reference was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.config import MethodConfig
from pipeline.methods import METHODS
from pipeline.models import MODELS

REFERENCES = Path(__file__).parent / "fixtures" / "references"
EXPECTED = json.loads((REFERENCES / "dola_expected.json").read_text())


@pytest.fixture(scope="module")
def loaded():
    return MODELS.get("llava15")().load(str(REFERENCES / "dola_llava"), torch.float32, "cpu")


@pytest.fixture(scope="module")
def samples():
    return [
        {k: v for k, v in sample.items() if k != "prompt"}
        for sample in torch.load(REFERENCES / "dola_inputs.pt", weights_only=True)
    ]


def generate(loaded, inputs, method: str, **params) -> list[int]:
    config = MethodConfig(name=method, **params)
    decoder = METHODS.get(method)()
    decoder.prepare(loaded, config)
    steps, generators = EXPECTED["max_new_tokens"], [torch.Generator().manual_seed(0)]
    [generation] = decoder.generate(loaded, inputs, config, steps, generators)
    return generation.token_ids


def test_greedy_equals_the_reference_models_greedy(loaded, samples):
    """Both sides run the same weights on the same inputs (transformers 5 here, 4.55.4 there)."""
    assert [generate(loaded, inputs, "greedy") for inputs in samples] == EXPECTED["tokens"]["greedy"]


@pytest.mark.parametrize("setting", list(EXPECTED["settings"]))
def test_dola_equals_hf_4_55_4_dola(loaded, samples, setting):
    layers = EXPECTED["settings"][setting]
    params = {"dola_layers": layers if isinstance(layers, str) else tuple(layers)}
    tokens = [
        generate(loaded, inputs, "dola", repetition_penalty=EXPECTED["repetition_penalty"], **params)
        for inputs in samples
    ]
    assert tokens == EXPECTED["tokens"][setting]
