"""Slow, literal reference implementations the decoding-method tests compare against.

- `eager_locore_attention`: LocoRE on materialised eager attention, every query row of a full
  sequence at once (row i gains the generated tokens at distance 1..w_s before it).
- `naive_saliency`: S(c) straight from the definition: the whole sequence prefix + c recomputed
  with eager attention, one candidate per row, loss from the row that predicts c.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from pipeline.api import LoadedModel
from pipeline.attention import Locore

REFERENCE_NAME = "halleval_reference"
_settings: dict[str, object] = {}


def use_reference_locore(locore: Locore | None, output_start: int) -> None:
    """Sets what the reference attention does (None: plain eager attention)."""
    _settings.update(locore=locore, output_start=output_start)


def eager_locore_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    n_rep = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(n_rep, dim=1), value.repeat_interleave(n_rep, dim=1)
    scores = (query @ key.transpose(-1, -2)).to(torch.promote_types(query.dtype, torch.float32)) * (scaling if scaling is not None else module.head_dim**-0.5)
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1).to(query.dtype)
    locore: Locore | None = _settings.get("locore")
    if locore is not None and locore.covers(module.layer_idx):
        q_len, k_len = probs.shape[-2:]
        rows = torch.arange(k_len - q_len, k_len, device=probs.device)[:, None]  # cache column of each query
        columns = torch.arange(k_len, device=probs.device)[None, :]
        distance = rows - columns
        window = (columns >= _settings["output_start"]) & (distance >= 1) & (distance <= locore.window)
        probs = probs * (1 + locore.beta * window.to(probs.dtype))
        if locore.renormalize:
            probs = probs / probs.sum(-1, keepdim=True)
    return (probs @ value).transpose(1, 2).contiguous(), probs


AttentionInterface.register(REFERENCE_NAME, eager_locore_attention)
AttentionMaskInterface.register(REFERENCE_NAME, eager_mask)


def set_text_attention(model, name: str) -> None:
    implementations = {sub: getattr(model.config, sub)._attn_implementation for sub in model.config.sub_configs}
    implementations["text_config"] = name
    model.set_attn_implementation(implementations)


def naive_saliency(
    loaded: LoadedModel,
    inputs: dict[str, torch.Tensor],
    prefix_ids: torch.Tensor,
    candidates: torch.Tensor,
    layers: tuple[int, ...],
    span: str,
    locore: Locore | None = None,
    predictor_offset: int = 1,
) -> torch.Tensor:
    """S(c) per row [B] for candidates [B] after `prefix_ids` (prompt + accepted outputs).

    `predictor_offset` is how many rows before c the loss is read: 1 is correct; the official
    code's off-by-one is 2.
    """
    model = loaded.model
    prompt_length = inputs["input_ids"].shape[1]
    ids = torch.cat([prefix_ids, candidates[:, None]], dim=1)
    batch, length = ids.shape
    extra = length - prompt_length
    kwargs = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    kwargs["attention_mask"] = torch.cat([inputs["attention_mask"], inputs["attention_mask"].new_ones(batch, extra)], 1)
    if "mm_token_type_ids" in inputs:
        kwargs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], inputs["mm_token_type_ids"].new_zeros(batch, extra)], 1)
    kwargs["position_ids"] = model._prepare_position_ids_for_generation(ids, dict(kwargs))
    previous = model.config.text_config._attn_implementation
    use_reference_locore(locore, prompt_length)
    set_text_attention(model, REFERENCE_NAME)
    model.requires_grad_(True)
    try:
        with torch.enable_grad():
            out = model(input_ids=ids, use_cache=False, output_attentions=True, **kwargs)
            predictor = length - 1 - predictor_offset
            loss = -torch.log_softmax(out.logits[:, predictor].double(), -1).gather(1, candidates[:, None]).sum()
            attentions = [out.attentions[layer] for layer in layers]
            grads = torch.autograd.grad(loss, attentions, allow_unused=False)
    finally:
        model.requires_grad_(False)
        use_reference_locore(None, 0)
        set_text_attention(model, previous)
    query_row = length - 2  # the row that predicts c; saliency is always read from it
    columns = torch.arange(query_row + 1, device=ids.device)
    visual = torch.tensor(sorted(loaded.adapter.visual_token_ids(loaded)), device=ids.device)
    result = torch.zeros(batch, dtype=torch.float64, device=ids.device)
    for b in range(batch):
        if span == "outputs":
            keys = columns >= prompt_length
        else:
            visual_columns = torch.nonzero(torch.isin(ids[b, :prompt_length], visual)).flatten()
            keys = columns > (int(visual_columns.max()) if len(visual_columns) else -1)
        per_layer = []
        for attention, grad in zip(attentions, grads):
            saliency_map = (attention[b, :, query_row, : query_row + 1] * grad[b, :, query_row, : query_row + 1]).abs().mean(0).double()
            norm = saliency_map.norm()
            normalised = saliency_map / norm if norm > 0 else saliency_map
            per_layer.append(normalised[keys].mean() if keys.any() else normalised.new_zeros(()))
        result[b] = torch.stack(per_layer).mean()
    return result
