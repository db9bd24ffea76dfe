"""Token saliency (paper Eq. 1, with the official code's off-by-one fixed), efficient form.

For a candidate c at position P after the prefix x, the loss is l = -log p(c | x) read from the
logits of row P-1, the row that predicts c. (The official code reads the loss one row early,
from a row that cannot see row P-1's attention, so every gradient, and every S(c), is zero.)
Row P-1 is the last token of the prefix, whose forward the decode loop runs anyway: it runs that
single-position forward differentiably (see `pipeline.attention`), so the K candidates of a step
cost one batched backward and no extra forward. Per target layer l, with A_l the attention
probabilities of row P-1 and G_l = dl/dA_l:

    M_l = mean over heads |A_l * G_l|   (a row over keys 0..P-1)
    S_l = mean over the key span J of M_l / ||M_l||_2
    S(c) = mean over target layers of S_l

Key span `post_image`: every token after the last visual token up to P-1 (question + accepted
outputs, as the official code); `outputs`: only the generated tokens (the paper's J_P).
"""

from __future__ import annotations

from typing import Literal

import torch

from pipeline.attention import SaliencyCapture

KeySpan = Literal["post_image", "outputs"]


def key_span_mask(
    input_ids: torch.Tensor, prompt_length: int, visual_ids: set[int], span: KeySpan
) -> torch.Tensor:
    """Boolean [B, T] mask of the keys saliency averages over, for the query at column T-1.

    Args:
        input_ids: [B, T] left-padded prompt plus accepted outputs; column T-1 predicts c.
        prompt_length: columns before this are the (padded) prompt.
        visual_ids: the adapter's image/video token ids, from which the visual span is found.
        span: "post_image" or "outputs".

    Returns:
        The mask; a row of a text-only prompt under "post_image" covers its whole prompt.
    """
    columns = torch.arange(input_ids.shape[1], device=input_ids.device)
    if span == "outputs":
        return (columns >= prompt_length).expand_as(input_ids)
    prompt = input_ids[:, :prompt_length]
    is_visual = torch.isin(prompt, torch.tensor(sorted(visual_ids), device=input_ids.device))
    # Last visual column per row (-1 when there is none); padding is on the left, so it is never
    # after the image.
    last_visual = torch.where(is_visual, columns[:prompt_length], -1).amax(dim=1)
    return columns[None, :] > last_visual[:, None]


def span_saliency(probs: torch.Tensor, grads: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
    """S_l of one layer from the query row's A [B, H, T] and G [..., B, H, T]: [..., B].

    The span mean is 0 for an empty span (e.g. `outputs` before the first generated token).
    """
    saliency_map = (probs * grads).abs().mean(dim=-2)
    normalised = torch.nn.functional.normalize(saliency_map, dim=-1)
    return (normalised * span).sum(-1) / span.sum(-1).clamp_min(1)


def _head_input_grads(capture: SaliencyCapture, candidates: torch.Tensor) -> torch.Tensor:
    """d(-log p(c)) / dh for each candidate, with logits = h W^T: (p - e_c) W.

    Returns [K, B, H], row k for candidate k of every batch row. Written as p W - W_c it would
    subtract two nearly equal vectors when p_c is close to 1 (a confident model), losing digits
    in the weights' dtype; so the candidates' own terms are kept apart: (p - e_c) W =
    p' W + sum_k (p_k - [k = c]) W_k, with p' the probabilities outside the candidates. The
    coefficients come from a float64 softmax, as in the generic path; the products run in the
    weights' dtype (what autograd's backward through the head runs in).
    """
    weight = capture.head_weight
    probs = torch.softmax(capture.logits.detach().double(), dim=-1)  # [B, V]
    outside = probs.scatter(1, candidates, 0.0).to(weight.dtype) @ weight  # [B, H]
    own = probs.gather(1, candidates)  # [B, K]
    eye = torch.eye(candidates.shape[1], dtype=own.dtype, device=own.device)
    coefficients = (own[:, None, :] - eye).to(weight.dtype)  # [B, c, k]: p_k - [k = c]
    grads = outside[:, None] + torch.einsum("bck,bkh->bch", coefficients, weight[candidates])
    return grads.transpose(0, 1)


def candidate_saliency(capture: SaliencyCapture, candidates: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
    """S(c) for K candidates per row in one batched backward: [B, K] float64.

    Args:
        capture: what the differentiable forward of the last prefix position recorded.
        candidates: [B, K] token ids.
        span: [B, T] key span mask (`key_span_mask`).

    Returns:
        The saliencies. The capture's graph is freed, so call this once per forward.
    """
    layers = sorted(capture.layers)
    deltas = [capture.deltas[layer] for layer in layers]
    if capture.head_weight is not None:
        grads = torch.autograd.grad(capture.head_input, deltas, grad_outputs=_head_input_grads(capture, candidates),
                                    is_grads_batched=True)
    else:
        with torch.enable_grad():  # the decode loop runs under no_grad
            losses = -torch.log_softmax(capture.logits.double(), dim=-1).gather(1, candidates)  # [B, K]
        k = candidates.shape[1]
        # Row k of the batched grad_outputs selects loss k of every row: rows do not interact in
        # the forward, so d(sum_b loss[b, k]) / dA[b] = d loss[b, k] / dA[b].
        selectors = torch.eye(k, dtype=losses.dtype, device=losses.device)[:, None, :].expand(k, *losses.shape)
        grads = torch.autograd.grad(losses, deltas, grad_outputs=selectors, is_grads_batched=True)
    # Under device_map a target layer may sit on another GPU than the span mask: each layer's
    # values come to the mask's device before the layers are averaged.
    per_layer = [
        span_saliency(
            capture.probs[layer][:, :, -1].double().to(span.device), grad[:, :, :, -1].double().to(span.device), span
        )
        for layer, grad in zip(layers, grads)
    ]
    return torch.stack(per_layer).mean(0).T  # [K, B] -> [B, K]
