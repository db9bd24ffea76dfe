"""SGRS, saliency-guided rejection sampling (paper Alg. 1), alone and with LocoRE.

Per step and row: C = top-K of softmax(logits / temperature); draw c from C renormalised (the
row's own generator); accept c if r * S(c) >= tau, with tau = alpha * mean of the last W
accepted saliencies (tau = 0 while there are none); else remove c from C and draw again, at most
R times; if every draw is rejected, take the original candidate with the highest S (fallback).
Only accepted tokens enter the history (Alg. 1 line 10; `fallback_in_history` adds the fallback's
S too, as the official code does), and it holds S unscaled, so `saliency_scale` r < 1 lowers
saliency against a threshold that stays where it was. An empty key span (`outputs` at the first
step) is no evidence: the first draw is accepted, its saliency recorded as null and kept out of
the history. When the candidates left after rejections have no probability mass (low
temperature), the row goes to the fallback instead of drawing.
All K saliencies come from one batched backward, so later draws cost nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.config import MethodConfig
from pipeline.decoding import DecodeState, StepChoice, TokenSelector
from pipeline.methods import METHODS
from pipeline.methods._base import SelectorMethod

Scorer = Callable[[DecodeState, torch.Tensor], torch.Tensor]


def make_sgrs_select(params: MethodConfig, score: Scorer | None = None) -> TokenSelector:
    """An SGRS selector with its own per-row saliency history (one per batch).

    Args:
        params: K (top_k), R (max_rejections), alpha, W (history_window), temperature,
            saliency_scale, key_span, fallback_in_history, record_candidates.
        score: S for candidates [B, K] -> [B, K]; defaults to the model's saliency over
            `params.key_span` (tests pass a stand-in).
    """
    if score is None:
        score = lambda state, candidates: state.saliency(candidates, params.key_span)  # noqa: E731
        empty_span = lambda state: state.span_is_empty(params.key_span)  # noqa: E731
    else:  # a stand-in S has no key span
        empty_span = lambda state: [False] * len(state.generators)  # noqa: E731
    history: dict[int, list[float]] = {}

    def select(state: DecodeState) -> StepChoice:
        probs = torch.softmax(state.logits / params.temperature, dim=-1)
        top_probs, top_ids = probs.topk(min(params.top_k, probs.shape[-1]), dim=-1)
        saliency = score(state, top_ids)
        # No key to average over (key_span `outputs` at the first step): S is no evidence.
        no_evidence = empty_span(state)
        # One copy to the host per step: on a GPU each value read from a device tensor waits for
        # it (float64 either way, so every comparison is the same); a draw is the only other wait.
        saliency_rows, weight_rows, best_rows = saliency.tolist(), top_probs.tolist(), saliency.argmax(-1).tolist()
        records = {"saliency": [], "tau": [], "rejections": [], "fallback": []}
        picks = []
        for row, generator in enumerate(state.generators):
            accepted = history.setdefault(row, [])
            recent = accepted[-params.history_window :]
            tau = params.alpha * sum(recent) / len(recent) if recent else 0.0
            pick, rejections = _draw(top_probs[row], weight_rows[row], saliency_rows[row], tau, params, generator,
                                     no_evidence[row])
            fallback = pick is None
            if fallback:
                pick = best_rows[row]
            chosen = saliency_rows[row][pick]
            if not no_evidence[row] and (not fallback or params.fallback_in_history):
                accepted.append(chosen)  # Alg. 1 line 10: accepted tokens only, unless asked
            picks.append(pick)
            records["saliency"].append(None if no_evidence[row] else chosen)
            records["tau"].append(tau)
            records["rejections"].append(rejections)
            records["fallback"].append(fallback)
        chosen_column = torch.tensor(picks, device=top_ids.device)[:, None]
        # The record is the token's probability under the proposal: top-K at T, renormalised.
        proposal = top_probs / top_probs.sum(-1, keepdim=True)
        choice = StepChoice(token_ids=top_ids.gather(1, chosen_column).squeeze(1),
                            logprobs=proposal.gather(1, chosen_column).squeeze(1).log(), **records)
        if params.record_candidates:
            choice.candidate_ids = top_ids.tolist()
            choice.candidate_saliency = saliency_rows
        return choice

    return select


def _draw(
    weights: torch.Tensor, host_weights: list[float], saliency: list[float], tau: float, params: MethodConfig,
    generator: torch.Generator, no_evidence: bool,
) -> tuple[int | None, int]:
    """One row's draws (Alg. 1 lines 4-9): the accepted candidate index (None: fall back) and the
    number of rejections. A rejected candidate leaves C; when what is left has no probability
    mass (a low temperature puts all of it on the rejected ones), there is nothing to draw and
    the row falls back. `weights` (on the row generator's device) feed the draws; their host
    copy and the saliencies decide, so a draw is the only value the loop waits for."""
    weights, host_weights = weights.clone(), list(host_weights)
    rejections = 0
    for _ in range(min(params.max_rejections, len(host_weights))):
        if not sum(host_weights) > 0:
            return None, rejections
        draw = int(torch.multinomial(weights, 1, generator=generator))
        if no_evidence or params.saliency_scale * saliency[draw] >= tau:
            return draw, rejections
        weights[draw] = host_weights[draw] = 0  # C <- C \ {c}; multinomial renormalises the rest
        rejections += 1
    return None, rejections


METHODS.register("sgrs")(lambda: SelectorMethod(make_sgrs_select, scores_saliency=True))
METHODS.register("sgrs+locore")(lambda: SelectorMethod(make_sgrs_select, locore=True, scores_saliency=True))
