"""SGRS (Alg. 1): threshold, rejection and removal, fallback, alpha = 0 is top-K sampling, seeded
runs repeat, and sgrs / sgrs+locore generate on every model family."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.config import MethodConfig
from pipeline.decoding import DecodeState, StepChoice, decode
from pipeline.methods import METHODS
from pipeline.methods.sgrs import make_sgrs_select
from pipeline.models import MODELS
from test_saliency import PROMPTS, load

STEPS = 6


def fake_state(logits: list[float], seed: int = 0, rows: int = 1) -> DecodeState:
    """`rows` rows with the same logits; row i draws from a generator seeded seed + i."""
    return DecodeState(
        loaded=None, input_ids=torch.zeros(rows, 1, dtype=torch.long), logits=torch.tensor([logits] * rows),
        model_kwargs={}, prompt_length=1, step=0,
        generators=[torch.Generator().manual_seed(seed + row) for row in range(rows)],
        finished=torch.zeros(rows, dtype=torch.bool),
    )


def scripted(*steps: list[float]):
    """A stand-in S: step i gives the i-th list, indexed like the top-K candidates."""
    calls = iter(steps)
    return lambda state, candidates: torch.tensor(_rows(next(calls)), dtype=torch.float64)


def _rows(saliency: list) -> list[list[float]]:
    """One row's list, or a list of rows as given."""
    return saliency if isinstance(saliency[0], list) else [saliency]


LOGITS = [4.0, 3.0, 2.0, 1.0, 0.0, -9.0]  # top-5 are ids 0..4


def test_tau_is_zero_while_history_is_empty_then_alpha_times_recent_mean():
    params = MethodConfig(name="sgrs", alpha=0.5, history_window=2, top_k=5)
    select = make_sgrs_select(params, scripted([0.0] * 5, [4.0] * 5, [2.0] * 5, [6.0] * 5, [1.0] * 5))
    taus = [select(fake_state(LOGITS, seed)).tau[0] for seed in range(5)]
    # Accepted: 0 (tau 0 accepts even S = 0), 4, 2, 6 -> tau = 0.5 * mean of the last two.
    assert taus == [0.0, 0.0, 0.5 * 2.0, 0.5 * 3.0, 0.5 * 4.0]


def test_rejected_candidates_are_removed_and_fallback_takes_best_original_saliency():
    params = MethodConfig(name="sgrs", alpha=1.0, top_k=5, max_rejections=5, record_candidates=True)
    low = [0.1, 0.3, 0.2, 0.25, 0.15]  # all below tau = 1.0 * 1.0
    select = make_sgrs_select(params, scripted([1.0] * 5, low))
    select(fake_state(LOGITS))
    choice = select(fake_state(LOGITS, seed=3))
    # R = K = 5 rejections can only happen if each draw removed its candidate (no repeats).
    assert choice.rejections == [5] and choice.fallback == [True]
    assert int(choice.token_ids[0]) == 1 and choice.saliency == [0.3]
    assert choice.candidate_ids == [[0, 1, 2, 3, 4]] and choice.candidate_saliency == [low]


def test_a_draw_below_tau_is_rejected_and_a_later_one_accepted():
    params = MethodConfig(name="sgrs", alpha=1.0, top_k=2, max_rejections=2)
    for seed in range(20):
        select = make_sgrs_select(params, scripted([1.0, 1.0], [0.5, 2.0]))
        select(fake_state(LOGITS))
        choice = select(fake_state(LOGITS, seed))
        # Candidate 0 (S 0.5 < tau 1) is never accepted; candidate 1 is, after 0 or 1 rejection.
        assert int(choice.token_ids[0]) == 1 and choice.fallback == [False]
        assert choice.rejections[0] in (0, 1)
        if choice.rejections[0] == 1:
            break
    else:
        pytest.fail("candidate 0 (p = 0.73) was never drawn first in 20 seeds")


class ScalarReads(TorchDispatchMode):
    """Counts reads of one tensor value into Python (int(), float(), bool()): on a GPU each one
    waits for the device to finish the work queued so far."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func.overloadpacket == torch.ops.aten._local_scalar_dense
        return func(*args, **(kwargs or {}))


def test_a_step_reads_one_value_per_draw_from_its_tensors():
    # Row 0 rejects twice then falls back (R = 2); row 1 accepts its first draw: three draws.
    params = MethodConfig(name="sgrs", alpha=1.0, top_k=3, max_rejections=2)
    select = make_sgrs_select(params, scripted([[1.0] * 3, [1.0] * 3], [[0.1, 0.3, 0.2], [2.0, 2.0, 2.0]]))
    select(fake_state(LOGITS, rows=2))
    with ScalarReads() as reads:
        choice = select(fake_state(LOGITS, rows=2))
    assert choice.rejections == [2, 0] and choice.fallback == [True, False]
    assert int(choice.token_ids[0]) == 1  # the fallback: best original saliency
    # One read per draw and none per row: the saliencies, weights and fallback picks come over as
    # lists once per step (`tolist`, which this mode does not see on the CPU).
    assert reads.count == 3


@pytest.mark.parametrize("name", MODELS.names())
def test_alpha_zero_is_top_k_sampling_with_the_same_draws(name):
    loaded, inputs = load(name, torch.float32)
    params = MethodConfig(name="sgrs", alpha=0.0, top_k=4, temperature=0.7)

    def top_k_sample(state: DecodeState) -> StepChoice:
        probs, ids = torch.softmax(state.logits / 0.7, dim=-1).topk(4, dim=-1)
        draws = [int(torch.multinomial(p, 1, generator=g)) for p, g in zip(probs, state.generators)]
        return StepChoice(token_ids=ids[torch.arange(len(draws)), draws])

    seeded = lambda: [torch.Generator().manual_seed(7 + i) for i in range(len(PROMPTS))]
    reference = decode(loaded, inputs, STEPS, seeded(), top_k_sample)
    method = METHODS.get("sgrs")()
    method.prepare(loaded, params)
    generated = method.generate(loaded, inputs, params, STEPS, seeded())
    assert [g.token_ids for g in generated] == [r.token_ids for r in reference]
    assert all(r == 0 for g in generated for r in g.rejections)


@pytest.mark.parametrize("method_name", ["sgrs", "sgrs+locore"])
@pytest.mark.parametrize("name", MODELS.names())
def test_sgrs_generates_records_and_repeats_with_a_fixed_seed(name, method_name):
    loaded, inputs = load(name, torch.float32)
    params = MethodConfig(name=method_name, alpha=0.9, record_candidates=True)
    method = METHODS.get(method_name)()
    method.prepare(loaded, params)
    seeded = lambda: [torch.Generator().manual_seed(11 + i) for i in range(len(PROMPTS))]
    first = method.generate(loaded, inputs, params, STEPS, seeded())
    second = method.generate(loaded, inputs, params, STEPS, seeded())
    assert [g.token_ids for g in first] == [g.token_ids for g in second]
    for g in first:
        n = len(g.token_ids)
        assert 0 < n <= STEPS
        assert len(g.saliency) == len(g.tau) == len(g.rejections) == len(g.fallback) == len(g.candidate_ids) == n
        assert g.tau[0] == 0.0 and all(s >= 0 for s in g.saliency)
        assert all(0 <= r <= params.max_rejections for r in g.rejections)
        assert all(len(c) == params.top_k for c in g.candidate_ids)
