"""The four SGRS details found by an independent check (issue 11): zero-mass candidates go to the
fallback, the fallback's saliency enters the history only when asked (official code), an empty
key span is no evidence (accepted, null, out of the history), and float64 runs keep float64
logits."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import MethodConfig
from pipeline.decoding import DecodeState, StepChoice, decode
from pipeline.methods import METHODS
from pipeline.methods.sgrs import make_sgrs_select
from test_saliency import PROMPTS, load
from test_sgrs import LOGITS, fake_state, scripted


def test_low_temperature_rejection_leaves_no_mass_and_falls_back_instead_of_raising():
    params = MethodConfig(name="sgrs", alpha=1.0, top_k=5, max_rejections=5, temperature=0.001, record_candidates=True)
    select = make_sgrs_select(params, scripted([1.0] * 5, [0.1, 0.3, 0.2, 0.25, 0.15]))
    select(fake_state(LOGITS))
    # softmax(logits / 0.001) puts all mass on candidate 0; once it is rejected the rest have p = 0
    # (torch.multinomial would raise "invalid multinomial distribution").
    choice = select(fake_state(LOGITS, seed=1))
    assert choice.rejections == [1] and choice.fallback == [True]
    assert int(choice.token_ids[0]) == choice.candidate_ids[0][1]  # the best original S


@pytest.mark.parametrize("in_history", [False, True])
def test_fallback_saliency_enters_the_history_only_when_asked(in_history):
    params = MethodConfig(name="sgrs", alpha=1.0, top_k=2, max_rejections=2, history_window=5, fallback_in_history=in_history)
    select = make_sgrs_select(params, scripted([2.0, 2.0], [0.5, 1.0], [9.0, 9.0]))
    select(fake_state(LOGITS))  # accepted: H = [2]
    assert select(fake_state(LOGITS, 1)).fallback == [True]  # both below tau = 2; fallback S = 1
    tau = select(fake_state(LOGITS, 2)).tau[0]
    assert tau == (1.0 * (2.0 + 1.0) / 2 if in_history else 2.0)


@pytest.mark.parametrize("name", ["llava15", "qwen2_vl"])
def test_an_empty_key_span_is_accepted_recorded_null_and_kept_out_of_the_history(name):
    loaded, inputs = load(name, torch.float32)
    params = MethodConfig(name="sgrs", alpha=0.9, key_span="outputs")
    method = METHODS.get("sgrs")()
    method.prepare(loaded, params)
    generated = method.generate(loaded, inputs, params, 4, [torch.Generator().manual_seed(3 + i) for i in range(len(PROMPTS))])
    for g in generated:
        assert g.saliency[0] is None and g.rejections[0] == 0 and not g.fallback[0]
        assert g.saliency[1] > 0 and g.tau[1] == 0.0  # H is still empty at step 1: S_0 stayed out
        # step 1 is always accepted (tau 0), so H = [S_1]; with S_0 = 0 in H tau would be half this
        assert g.tau[2] == pytest.approx(0.9 * g.saliency[1], rel=1e-12)

    recorded = METHODS.get("greedy")()
    greedy = MethodConfig(name="greedy", record_saliency=True, key_span="outputs")
    recorded.prepare(loaded, greedy)
    for g in recorded.generate(loaded, inputs, greedy, 3, [torch.Generator() for _ in PROMPTS]):
        assert g.saliency[0] is None and all(s > 0 for s in g.saliency[1:])


def test_float64_runs_keep_float64_logits():
    loaded, inputs = load("llava15", torch.float64)
    seen = []

    def select(state: DecodeState) -> StepChoice:
        seen.append(state.logits.dtype)
        return StepChoice(token_ids=state.logits.argmax(-1))

    decode(loaded, inputs, 3, [torch.Generator() for _ in PROMPTS], select)
    assert seen and all(dtype == torch.float64 for dtype in seen)
