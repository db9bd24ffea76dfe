"""DoLa, decoding by contrasting layers (Chuang et al., ICLR 2024), greedy, as its code and HF's
port of it.

Each step reads the next-token distribution of the final (mature) layer N and of every candidate
premature layer j (the vocabulary head applied to hidden state j, as HF's `_dola_decoding`: no
final norm on early layers). The premature layer M is the candidate whose distribution is
farthest from the final one, by the divergence DoLa's code computes,
0.5 * (KL(m || q_N) + KL(m || q_j)) / |V| with m = (q_N + q_j) / 2, chosen per sample (HF
averages it over the batch, which makes a sample's output depend on its batch-mates). Then

    F(y) = log q_N(y) - log q_M(y)   on V_head = {y : q_N(y) >= relative_top * max q_N}, -inf elsewhere

(premature scores outside V_head set to -1e-3 first, as the code does), the CTRL repetition
penalty on every token already in the sequence (prompt included), and argmax. Exact ties of F
are broken by q_N, so the final layer as its own premature layer (F = 0 on V_head) is greedy.
Record `premature_layer`: M at each step (a hidden-state index, 0 = embeddings).
"""

from __future__ import annotations

import torch

from pipeline.config import MethodConfig
from pipeline.decoding import DecodeState, StepChoice, TokenSelector
from pipeline.methods import METHODS
from pipeline.methods._base import SelectorMethod

BASE_FILTER_VALUE = -1e-3  # premature log-prob outside V_head in DoLa's code


def candidate_layers(dola_layers: str | tuple[int, ...], final_layer: int, tied_embeddings: bool) -> list[int]:
    """Candidate premature layers, as HF's `dola_layers`: 'low' = range(start, N // 2, 2), 'high' =
    range(N // 2, N, 2) (the 20 lowest / highest for N > 40), start skipping the embeddings when
    they are tied to the head; a tuple is taken as given (indices up to N)."""
    if not isinstance(dola_layers, str):
        return [layer for layer in dola_layers if layer <= final_layer]
    start = 0 if not tied_embeddings else (2 if final_layer > 2 else final_layer - 1 if final_layer == 2 else 0)
    if dola_layers == "low":
        if start == final_layer // 2:
            return [start]
        return list(range(start, final_layer // 2, 2)) if final_layer <= 40 else list(range(start, 20, 2))
    return list(range(final_layer // 2, final_layer, 2)) if final_layer <= 40 else list(range(final_layer - 20, final_layer, 2))


def divergence(final_logits: torch.Tensor, premature_logits: torch.Tensor) -> torch.Tensor:
    """DoLa's code's layer distance per row: 0.5 * (KL(m||q_N) + KL(m||q_j)) averaged over V."""
    final_log, premature_log = final_logits.log_softmax(-1), premature_logits.log_softmax(-1)
    mean = 0.5 * (final_log.exp() + premature_log.exp())
    kl_final = torch.nn.functional.kl_div(final_log, mean, reduction="none").mean(-1)
    kl_premature = torch.nn.functional.kl_div(premature_log, mean, reduction="none").mean(-1)
    return 0.5 * (kl_final + kl_premature)


def contrast(final_logits: torch.Tensor, premature_logits: torch.Tensor, relative_top: float) -> torch.Tensor:
    """F = log q_N - log q_M on V_head, -inf elsewhere (DoLa's relative-top filter)."""
    final_log, premature_log = final_logits.log_softmax(-1), premature_logits.log_softmax(-1)
    threshold = final_log.max(-1, keepdim=True).values + torch.log(torch.tensor(relative_top, dtype=final_log.dtype))
    outside = final_log < threshold
    return final_log.masked_fill(outside, float("-inf")) - premature_log.masked_fill(outside, BASE_FILTER_VALUE)


def repetition_penalty(scores: torch.Tensor, input_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty, as HF's RepetitionPenaltyLogitsProcessor: a token already in the sequence
    has its score multiplied by `penalty` when negative, divided by it when positive."""
    if penalty == 1.0:
        return scores
    seen = scores.gather(1, input_ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return scores.scatter(1, input_ids, seen)


def dola_step(state: DecodeState, params: MethodConfig) -> StepChoice:
    """One DoLa step from the main stream's hidden states."""
    model = state.loaded.model
    text_config = model.config.get_text_config()
    final_layer = text_config.num_hidden_layers
    layers = candidate_layers(params.dola_layers, final_layer, bool(getattr(text_config, "tie_word_embeddings", False)))
    head = model.get_output_embeddings()
    final = state.logits
    # The final hidden state's logits are the model's own (recomputing them would round differently).
    premature = torch.stack(
        [final if layer == final_layer else head(state.hidden_states[layer]).to(final.dtype) for layer in layers]
    )  # [L, B, V]
    chosen = divergence(final[None], premature).argmax(0)  # [B], per row
    scores = contrast(final, premature[chosen, torch.arange(len(final))], params.relative_top)
    scores = repetition_penalty(scores, state.input_ids, params.repetition_penalty)
    best = scores.max(-1, keepdim=True).values
    # argmax, exact ties broken by the final layer's probability
    tokens = torch.where(scores == best, final, torch.full_like(final, float("-inf"))).argmax(-1)
    logprobs = scores.log_softmax(-1).gather(1, tokens[:, None]).squeeze(1)
    return StepChoice(token_ids=tokens, logprobs=logprobs, fields={"premature_layer": [layers[i] for i in chosen.tolist()]})


def make_dola_select(params: MethodConfig) -> TokenSelector:
    return lambda state: dola_step(state, params)


METHODS.register("dola")(lambda: SelectorMethod(make_dola_select, hidden_states=True))
