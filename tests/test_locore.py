"""LocoRE: the fused SDPA + log-sum-exp form equals eager attention with the gain applied to the
materialised weights; beta = 0 is plain decoding token for token; runs on every family."""

from __future__ import annotations

import pytest
import torch

from method_reference import REFERENCE_NAME, eager_locore_attention, set_text_attention, use_reference_locore
from pipeline import attention
from pipeline.attention import AttentionPlan, Locore, halleval_attention
from pipeline.config import MethodConfig
from pipeline.decoding import decode, greedy_select
from pipeline.methods import METHODS
from pipeline.models import MODELS
from test_saliency import PROMPTS, load

STEPS = 8


class _Head(torch.nn.Module):
    def __init__(self, layer_idx: int, head_dim: int) -> None:
        super().__init__()
        self.layer_idx, self.head_dim, self.num_key_value_groups = layer_idx, head_dim, 2


@pytest.mark.parametrize("renormalize", [False, True])
def test_fused_attention_equals_eager_with_gain_on_a_padded_decode_query(renormalize):
    torch.manual_seed(0)
    batch, heads, kv_heads, keys, dim, output_start = 2, 4, 2, 20, 8, 9
    query = torch.randn(batch, heads, 1, dim, dtype=torch.float64)
    key = torch.randn(batch, kv_heads, keys, dim, dtype=torch.float64)
    value = torch.randn(batch, kv_heads, keys, dim, dtype=torch.float64)
    mask = torch.ones(batch, 1, 1, keys, dtype=torch.bool)
    mask[1, ..., :4] = False  # left padding of the second row
    locore = Locore(layers=(3, 3), beta=0.4, window=5, renormalize=renormalize)
    module = _Head(3, dim)
    with attention.active(AttentionPlan(output_start=output_start, locore=locore)):
        fused, _ = halleval_attention(module, query, key, value, mask)
    use_reference_locore(locore, output_start)
    additive = torch.zeros(mask.shape, dtype=torch.float64).masked_fill(~mask, float("-inf"))
    eager, _ = eager_locore_attention(module, query, key, value, additive)
    use_reference_locore(None, 0)
    plain, _ = halleval_attention(module, query, key, value, mask)
    torch.testing.assert_close(fused, eager, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(fused, plain)


@pytest.mark.parametrize("name", MODELS.names())
def test_locore_run_equals_eager_reference_run(name):
    loaded, inputs = load(name)
    adapter = loaded.adapter
    locore = Locore(adapter.default_locore_layers, beta=0.6, window=4)
    generators = [torch.Generator() for _ in PROMPTS]
    attention.install(loaded.model)
    fused = decode(loaded, inputs, STEPS, generators, greedy_select, locore=locore)
    plain = decode(loaded, inputs, STEPS, generators, greedy_select)
    set_text_attention(loaded.model, REFERENCE_NAME)
    use_reference_locore(locore, inputs["input_ids"].shape[1])
    try:
        eager = decode(loaded, inputs, STEPS, generators, greedy_select)
    finally:
        use_reference_locore(None, 0)
        attention.install(loaded.model)
    for f, e, p in zip(fused, eager, plain):
        assert f.token_ids == e.token_ids
        torch.testing.assert_close(torch.tensor(f.logprobs), torch.tensor(e.logprobs), rtol=1e-9, atol=1e-10)
        assert f.logprobs[2:] != p.logprobs[2:]  # the gain acts once there are generated tokens


@pytest.mark.parametrize("name", MODELS.names())
def test_locore_with_zero_beta_is_plain_greedy(name):
    loaded, inputs = load(name, torch.float32)
    generators = [torch.Generator() for _ in PROMPTS]
    greedy, locore = METHODS.get("greedy")(), METHODS.get("locore")()
    reference = greedy.generate(loaded, inputs, MethodConfig(name="greedy"), STEPS, generators)
    params = MethodConfig(name="locore", beta=0.0)
    locore.prepare(loaded, params)
    assert loaded.model.config.text_config._attn_implementation == attention.ATTENTION_NAME
    generated = locore.generate(loaded, inputs, params, STEPS, generators)
    assert [g.token_ids for g in generated] == [r.token_ids for r in reference]
    assert [g.logprobs for g in generated] == [r.logprobs for r in reference]


@pytest.mark.parametrize("name", MODELS.names())
def test_locore_method_uses_adapter_defaults_and_records_saliency(name):
    loaded, inputs = load(name, torch.float32)
    method = METHODS.get("locore")()
    params = MethodConfig(name="locore", record_saliency=True, renormalize=True)
    method.prepare(loaded, params)
    generated = method.generate(loaded, inputs, params, STEPS, [torch.Generator() for _ in PROMPTS])
    for g in generated:
        assert 0 < len(g.token_ids) <= STEPS and len(g.saliency) == len(g.token_ids)


def test_cpu_decode_takes_the_kernel_lse_path_and_matches_the_generic_one(monkeypatch):
    """The fast path (log-sum-exp from the fused CPU kernel) is what makes LocoRE cost ~1.04x a
    plain step; a silent fall back to the generic path would only show up in the benchmark."""
    loaded, inputs = load("llava15", torch.float32)
    params = MethodConfig(name="locore", beta=0.5)
    method = METHODS.get("locore")()
    method.prepare(loaded, params)
    fast_calls = []
    real_fast = attention._fast_locore
    monkeypatch.setattr(attention, "_fast_locore", lambda *a, **k: fast_calls.append(1) or real_fast(*a, **k))
    fast = method.generate(loaded, inputs, params, STEPS, [torch.Generator() for _ in PROMPTS])
    layers = params.locore_layers or loaded.adapter.default_locore_layers
    # Every LocoRE layer of every decode forward but the first: STEPS tokens take STEPS - 1
    # forwards after prefill, and the first of them has no earlier output to reinforce.
    assert len(fast_calls) == (STEPS - 2) * (layers[1] - layers[0] + 1)

    with attention.generic_locore():  # the extra-q.K path
        generic = method.generate(loaded, inputs, params, STEPS, [torch.Generator() for _ in PROMPTS])
    assert len(fast_calls) == (STEPS - 2) * (layers[1] - layers[0] + 1)  # none more
    assert [g.token_ids for g in fast] == [g.token_ids for g in generic]
    for a, b in zip(fast, generic):
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5)
