"""Saliency: the efficient cached, batched form equals the naive full recompute on every model
family; it is not zero; the official code's off-by-one would make it zero."""

from __future__ import annotations

import functools

import pytest
import torch
from PIL import Image

from method_reference import naive_saliency
from pipeline import attention
from pipeline.api import Visual
from pipeline.attention import Locore, SaliencyCapture
from pipeline.decoding import DecodeState, StepChoice, decode
from pipeline.methods import METHODS
from pipeline.config import MethodConfig
from pipeline.models import MODELS
from pipeline.model_inputs import build_inputs
from pipeline.saliency import _head_input_grads

PROMPTS = ["describe the image in detail", "is there a dog ?"]  # different lengths: left padding
STEPS = 4
K = 2


@functools.cache
def load(name: str, dtype=torch.float64):
    """A tiny model and a two-prompt batch, built once per test session (tests that change the
    text attention implementation put it back)."""
    adapter = MODELS.get(name)()
    loaded = adapter.load("tiny", dtype, "cpu")
    frames = 2 if adapter.modality == "video" else 1
    visuals = [
        Visual(images=[Image.new("RGB", (56, 56), (60 * i + 20 * f, 90, 40)) for f in range(frames)], modality=adapter.modality)
        for i in range(len(PROMPTS))
    ]
    return loaded, build_inputs(loaded, PROMPTS, visuals)


def efficient_records(loaded, inputs, span, locore=None, shortcut=None):
    """Greedy decoding that scores the top-K candidates at every step: (prefix, candidates, S).
    `shortcut` collects, per step, whether the linear-head gradient shortcut was taken."""
    layers = loaded.adapter.default_target_layers
    # A random model may emit an image/video placeholder, which a full recompute with pixels
    # would then count as a visual token; keep those out of the candidates.
    visual = sorted(loaded.adapter.visual_token_ids(loaded))
    records = []

    def select(state: DecodeState) -> StepChoice:
        logits = state.logits.clone()
        logits[:, visual] = float("-inf")
        candidates = logits.topk(K, dim=-1).indices
        records.append((state.input_ids.clone(), candidates, state.saliency(candidates, span)))
        if shortcut is not None:
            shortcut.append(state.capture.head_weight is not None)
        return StepChoice(token_ids=candidates[:, 0])

    attention.install(loaded.model)
    generators = [torch.Generator() for _ in PROMPTS]
    decode(loaded, inputs, STEPS, generators, select, locore=locore, saliency_layers=layers)
    return records


@pytest.mark.parametrize("name", MODELS.names())
def test_every_family_takes_the_linear_head_shortcut(name):
    loaded, inputs = load(name)
    taken = []
    efficient_records(loaded, inputs, "post_image", shortcut=taken)
    assert taken == [True] * STEPS


def test_a_head_that_is_not_plain_linear_falls_back_to_autograd_and_stays_exact():
    """A logit scale (as Cohere's) after the head: the shortcut p W - W_c would be wrong, so the
    check at the first step turns it off and the backward goes through the head."""
    loaded, inputs = load("llava15")
    layers = loaded.adapter.default_target_layers
    handle = loaded.model.get_output_embeddings().register_forward_hook(lambda module, args, out: out * 0.5)
    try:
        taken = []
        records = efficient_records(loaded, inputs, "post_image", shortcut=taken)
        assert taken == [False] * STEPS
        prefix, candidates, efficient = records[-1]
        naive = naive_saliency(loaded, inputs, prefix, candidates[:, 0], layers, "post_image")
        torch.testing.assert_close(efficient[:, 0], naive, rtol=1e-8, atol=1e-12)
    finally:
        handle.remove()


@pytest.mark.parametrize("span", ["post_image", "outputs"])
@pytest.mark.parametrize("name", MODELS.names())
def test_efficient_saliency_equals_naive_recompute(name, span):
    loaded, inputs = load(name)
    layers = loaded.adapter.default_target_layers
    records = efficient_records(loaded, inputs, span)
    for step, (prefix, candidates, efficient) in enumerate(records):
        assert efficient.shape == (len(PROMPTS), K)
        for k in range(K):
            naive = naive_saliency(loaded, inputs, prefix, candidates[:, k], layers, span)
            torch.testing.assert_close(efficient[:, k], naive, rtol=1e-8, atol=1e-12)
        if span == "outputs" and step == 0:
            assert (efficient == 0).all()  # no generated token yet: the span is empty
        else:
            assert (efficient > 0).all()
    # Candidates of a step differ in their loss, so they differ in saliency.
    assert not torch.allclose(records[-1][2][:, 0], records[-1][2][:, 1])


@pytest.mark.parametrize("name", MODELS.names())
def test_saliency_of_a_locore_run_is_measured_through_the_modified_attention(name):
    loaded, inputs = load(name)
    adapter = loaded.adapter
    locore = Locore(adapter.default_locore_layers, beta=0.5, window=3)
    # Target layers inside the LocoRE range, so the gain changes A itself, not only its inputs.
    layers = tuple(range(adapter.default_locore_layers[0], adapter.default_locore_layers[0] + 2))
    layers_holder = type(adapter).default_target_layers
    type(adapter).default_target_layers = layers
    try:
        records = efficient_records(loaded, inputs, "post_image", locore=locore)
    finally:
        type(adapter).default_target_layers = layers_holder
    prefix, candidates, efficient = records[-1]
    with_locore = naive_saliency(loaded, inputs, prefix, candidates[:, 0], layers, "post_image", locore=locore)
    without = naive_saliency(loaded, inputs, prefix, candidates[:, 0], layers, "post_image")
    torch.testing.assert_close(efficient[:, 0], with_locore, rtol=1e-8, atol=1e-12)
    assert not torch.allclose(with_locore, without)


def test_official_off_by_one_gives_zero_saliency():
    loaded, inputs = load("llava15")
    layers = loaded.adapter.default_target_layers
    prefix = inputs["input_ids"]
    candidates = torch.tensor([5, 6])
    buggy = naive_saliency(loaded, inputs, prefix, candidates, layers, "post_image", predictor_offset=2)
    fixed = naive_saliency(loaded, inputs, prefix, candidates, layers, "post_image")
    assert (buggy == 0).all() and (fixed > 0).all()


@pytest.mark.parametrize("name", MODELS.names())
def test_record_saliency_keeps_greedy_tokens_and_records_each_token(name):
    loaded, inputs = load(name, torch.float32)
    generators = [torch.Generator() for _ in PROMPTS]
    plain = METHODS.get("greedy")()
    params = MethodConfig(name="greedy")
    plain.prepare(loaded, params)
    reference = plain.generate(loaded, inputs, params, STEPS, generators)
    recording = MethodConfig(name="greedy", record_saliency=True)
    plain.prepare(loaded, recording)
    recorded = plain.generate(loaded, inputs, recording, STEPS, generators)
    for ref, rec in zip(reference, recorded):
        assert rec.token_ids == ref.token_ids
        assert ref.saliency is None
        assert len(rec.saliency) == len(rec.token_ids) and all(s > 0 for s in rec.saliency)


def test_the_head_shortcut_keeps_its_digits_when_the_model_is_confident():
    """With p_c near 1, p W - W_c is a difference of two nearly equal float32 vectors; the
    shortcut keeps the candidates' terms apart, so its error stays at float32 rounding of the
    result (as autograd's (p - e_c) W), which is what lets SGRS on the float32 organism make
    the same decisions as the backward through the head."""
    generator = torch.Generator().manual_seed(0)
    vocab, hidden = 500, 64
    weight = torch.randn(vocab, hidden, generator=generator)
    logits = torch.randn(2, vocab, generator=generator)
    logits[:, 7] = 25.0  # p(7) = 1 - ~1e-8
    candidates = torch.tensor([[7, 3, 9], [7, 1, 2]])
    capture = SaliencyCapture(frozenset({0}), logits=logits, head_weight=weight)
    got = _head_input_grads(capture, candidates).double()
    probs = torch.softmax(logits.double(), -1)
    for k in range(candidates.shape[1]):
        expected = (probs - torch.nn.functional.one_hot(candidates[:, k], vocab).double()) @ weight.double()
        error = (got[k] - expected).norm(dim=-1) / expected.norm(dim=-1)
        assert (error < 1e-5).all(), (k, error)
