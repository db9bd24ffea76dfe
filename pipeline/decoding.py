"""The batched decode loop that every decoding method shares.

The loop owns the KV cache and the model's own input preparation (`prepare_inputs_for_generation`,
as `generate` uses it), so rope offsets, visual inputs on the first step and left padding behave
exactly as in transformers for every model family. A method only decides which token each row
takes next: it is a `TokenSelector` called once per step with the `DecodeState`.

Two options change how the forwards run (both through `pipeline.attention`, which the method
installs in `prepare`): `locore` modifies decode-step attention, and `saliency_layers` makes the
forward that produces each step's logits differentiable with respect to those layers' attention,
so a selector can score candidates with `DecodeState.saliency`. That forward is the single
position P-1 that predicts the next token; for the first step the prompt is prefilled without
its last token, which then runs alone like any decode step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from pipeline import attention
from pipeline.api import Generation, LoadedModel
from pipeline.attention import AttentionPlan, Locore, SaliencyCapture
from pipeline.saliency import KeySpan, candidate_saliency, key_span_mask


@dataclass
class StepChoice:
    """A selector's decision for one step: the next token of every row and optional records."""

    token_ids: torch.Tensor  # [B] long
    saliency: list[float] | None = None
    tau: list[float] | None = None
    rejections: list[int] | None = None
    fallback: list[bool] | None = None
    candidate_ids: list[list[int]] | None = None
    candidate_saliency: list[list[float]] | None = None


@dataclass
class DecodeState:
    """What a selector may read at a step. `logits` are the float32 next-token logits [B, V];
    `model_kwargs` hold the cache and attention mask of the sequence so far (prefix)."""

    loaded: LoadedModel
    input_ids: torch.Tensor  # [B, T] prompt (left-padded) + accepted tokens
    logits: torch.Tensor
    model_kwargs: dict[str, Any]
    prompt_length: int
    step: int
    generators: list[torch.Generator]
    finished: torch.Tensor  # [B] bool
    history: list[dict[str, list]] = field(default_factory=list)  # per-row records so far
    capture: SaliencyCapture | None = None  # set when the loop runs with saliency_layers

    def model_inputs(self, next_tokens: torch.Tensor) -> dict[str, Any]:
        """Inputs that run `next_tokens` ([B, n]) as the next positions after the prefix."""
        model = self.loaded.model
        kwargs = dict(self.model_kwargs)
        mask = kwargs["attention_mask"]
        kwargs["attention_mask"] = torch.cat([mask, mask.new_ones(mask.shape[0], next_tokens.shape[1])], dim=1)
        ids = torch.cat([self.input_ids, next_tokens], dim=1)
        return model.prepare_inputs_for_generation(ids, next_sequence_length=next_tokens.shape[1], **kwargs)

    def saliency(self, candidates: torch.Tensor, span: KeySpan) -> torch.Tensor:
        """S(c) of each row's candidates [B, K] as the next token: [B, K] float64. Once per step.

        Raises:
            RuntimeError: the loop was not asked for saliency (`saliency_layers`).
        """
        if self.capture is None:
            raise RuntimeError("saliency needs decode(..., saliency_layers=...)")
        visual_ids = self.loaded.adapter.visual_token_ids(self.loaded)
        mask = key_span_mask(self.input_ids, self.prompt_length, visual_ids, span)
        return candidate_saliency(self.capture, candidates, mask)


TokenSelector = Callable[[DecodeState], StepChoice]

# A StepChoice's per-row records, each kept under the same name in Generation.
_RECORD_FIELDS = tuple(f.name for f in fields(StepChoice) if f.name != "token_ids")


def _detach_cache(cache: Any) -> None:
    """Cuts the graph a differentiable forward left in the cache (values are unchanged), so the
    next forward neither extends nor keeps it."""
    for layer in cache.layers:
        layer.keys = layer.keys.detach()
        layer.values = layer.values.detach()


def _forward(model: Any, model_inputs: dict[str, Any], capture: SaliencyCapture | None) -> Any:
    if capture is None:
        return model(**model_inputs, return_dict=True)
    capture.clear()
    with torch.enable_grad():
        outputs = model(**model_inputs, return_dict=True)
        capture.logits = outputs.logits[:, -1]
    _detach_cache(outputs.cache)
    return outputs


# The model kwargs with one entry per token, which `_update_model_kwargs_for_generation` extends.
_PER_TOKEN_KWARGS = ("attention_mask", "position_ids", "token_type_ids", "mm_token_type_ids")


def _without_last_position(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The prompt's model kwargs minus the last token (every per-token tensor's last column)."""
    return {k: v[..., :-1] if k in _PER_TOKEN_KWARGS and v is not None else v for k, v in model_kwargs.items()}


@torch.no_grad()
def decode(
    loaded: LoadedModel,
    inputs: dict[str, torch.Tensor],
    max_new_tokens: int,
    generators: list[torch.Generator],
    select: TokenSelector,
    locore: Locore | None = None,
    saliency_layers: tuple[int, ...] | None = None,
) -> list[Generation]:
    """Runs prefill then one selector call per new token, until every row hit EOS or the limit.

    Args:
        loaded: the model; with `locore` or `saliency_layers` its attention must be the halleval
            one (`pipeline.attention.install`).
        inputs: the adapter's left-padded batch.
        max_new_tokens: the limit.
        generators: one seeded generator per row.
        select: the method's token selector.
        locore: LocoRE settings for the decode steps, or None.
        saliency_layers: target layers whose attention the selector may take gradients of.
    """
    model = loaded.model
    input_ids = inputs["input_ids"]
    batch, prompt_length = input_ids.shape
    model_kwargs = {k: v for k, v in inputs.items() if k != "input_ids"}
    model_kwargs["use_cache"] = True
    if "position_ids" in inspect.signature(model.forward).parameters:
        # As `generate` does: positions that skip left padding (3-D M-RoPE ones for Qwen-VL).
        model_kwargs["position_ids"] = model._prepare_position_ids_for_generation(input_ids, model_kwargs)
    eos = torch.tensor(sorted(loaded.eos_token_ids), device=input_ids.device)
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else int(eos[0])
    capture = SaliencyCapture(frozenset(saliency_layers)) if saliency_layers else None
    plan = AttentionPlan(output_start=prompt_length, locore=locore, capture=capture)

    with attention.active(plan):
        if capture is None:
            model_inputs = model.prepare_inputs_for_generation(input_ids, is_first_iteration=True, **model_kwargs)
            outputs = model(**model_inputs, return_dict=True)
        else:
            model_kwargs = _without_last_position(model_kwargs)
            model_inputs = model.prepare_inputs_for_generation(input_ids[:, :-1], is_first_iteration=True, **model_kwargs)
            outputs = model(**model_inputs, return_dict=True)
            model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
            model_inputs = model.prepare_inputs_for_generation(input_ids, next_sequence_length=1, **model_kwargs)
            outputs = _forward(model, model_inputs, capture)
        model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)

        state = DecodeState(
            loaded=loaded,
            input_ids=input_ids,
            logits=outputs.logits[:, -1].detach().float(),
            model_kwargs=model_kwargs,
            prompt_length=prompt_length,
            step=0,
            generators=generators,
            finished=torch.zeros(batch, dtype=torch.bool, device=input_ids.device),
            history=[{"token_ids": [], "logprobs": []} for _ in range(batch)],
            capture=capture,
        )
        for step in range(max_new_tokens):
            state.step = step
            choice = select(state)
            tokens = torch.where(state.finished, torch.full_like(choice.token_ids, pad_id), choice.token_ids)
            logprobs = torch.log_softmax(state.logits, dim=-1).gather(1, tokens[:, None]).squeeze(1)
            for row in range(batch):
                if state.finished[row]:
                    continue
                record = state.history[row]
                record["token_ids"].append(int(tokens[row]))
                record["logprobs"].append(float(logprobs[row]))
                for name in _RECORD_FIELDS:
                    values = getattr(choice, name)
                    if values is not None:
                        record.setdefault(name, []).append(values[row])
            state.finished |= torch.isin(tokens, eos)
            state.input_ids = torch.cat([state.input_ids, tokens[:, None]], dim=1)
            if bool(state.finished.all()) or step == max_new_tokens - 1:
                break
            model_inputs = model.prepare_inputs_for_generation(state.input_ids, next_sequence_length=1, **model_kwargs)
            outputs = _forward(model, model_inputs, capture)
            model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
            state.model_kwargs = model_kwargs
            state.logits = outputs.logits[:, -1].detach().float()

    return [Generation(**record) for record in state.history]


def greedy_select(state: DecodeState) -> StepChoice:
    return StepChoice(token_ids=state.logits.argmax(dim=-1))


def sample_from(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One draw per row, each from that row's own generator (batch-size independent)."""
    draws = [torch.multinomial(probs[row], 1, generator=gen) for row, gen in enumerate(generators)]
    return torch.cat(draws)


def make_sample_select(temperature: float) -> TokenSelector:
    def select(state: DecodeState) -> StepChoice:
        probs = torch.softmax(state.logits / temperature, dim=-1)
        return StepChoice(token_ids=sample_from(probs, state.generators))

    return select
