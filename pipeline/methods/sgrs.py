"""SGRS, saliency-guided rejection sampling (paper Alg. 1), alone and with LocoRE.

Per step and row: C = top-K of softmax(logits / temperature); draw c from C renormalised (the
row's own generator); accept c if r * S(c) >= tau, with tau = alpha * mean of the last W
accepted saliencies (tau = 0 while there are none); else remove c from C and draw again, at most
R times; if every draw is rejected, take the original candidate with the highest S (fallback).
Only accepted tokens enter the history (Alg. 1 line 10), and it holds S unscaled, so
`saliency_scale` r < 1 lowers saliency against a threshold that stays where it was.
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
            saliency_scale, key_span, record_candidates.
        score: S for candidates [B, K] -> [B, K]; defaults to the model's saliency over
            `params.key_span` (tests pass a stand-in).
    """
    score = score or (lambda state, candidates: state.saliency(candidates, params.key_span))
    history: dict[int, list[float]] = {}

    def select(state: DecodeState) -> StepChoice:
        probs = torch.softmax(state.logits / params.temperature, dim=-1)
        top_probs, top_ids = probs.topk(min(params.top_k, probs.shape[-1]), dim=-1)
        saliency = score(state, top_ids)
        choice = StepChoice(token_ids=top_ids[:, 0].clone(), saliency=[], tau=[], rejections=[], fallback=[])
        for row, generator in enumerate(state.generators):
            accepted = history.setdefault(row, [])
            recent = accepted[-params.history_window :]
            tau = params.alpha * sum(recent) / len(recent) if recent else 0.0
            weights = top_probs[row].clone()
            rejections, pick = 0, None
            for _ in range(min(params.max_rejections, len(weights))):
                draw = int(torch.multinomial(weights, 1, generator=generator))
                if params.saliency_scale * float(saliency[row, draw]) >= tau:
                    pick = draw
                    accepted.append(float(saliency[row, draw]))
                    break
                weights[draw] = 0  # C <- C \ {c}; multinomial renormalises the rest
                rejections += 1
            fallback = pick is None
            if fallback:
                pick = int(saliency[row].argmax())
            choice.token_ids[row] = top_ids[row, pick]
            choice.saliency.append(float(saliency[row, pick]))
            choice.tau.append(tau)
            choice.rejections.append(rejections)
            choice.fallback.append(fallback)
        if params.record_candidates:
            choice.candidate_ids = top_ids.tolist()
            choice.candidate_saliency = saliency.tolist()
        return choice

    return select


METHODS.register("sgrs")(lambda: SelectorMethod(make_sgrs_select, scores_saliency=True))
METHODS.register("sgrs+locore")(lambda: SelectorMethod(make_sgrs_select, locore=True, scores_saliency=True))
