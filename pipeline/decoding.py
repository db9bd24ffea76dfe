"""The batched decode loop that every decoding method shares.

The loop owns the KV cache and the model's own input preparation (`prepare_inputs_for_generation`,
as `generate` uses it), so rope offsets, visual inputs on the first step and left padding behave
exactly as in transformers for every model family. A method only decides which token each row
takes next: it is a `TokenSelector` called once per step with the `DecodeState`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pipeline.api import Generation, LoadedModel


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

    def model_inputs(self, next_tokens: torch.Tensor) -> dict[str, Any]:
        """Inputs that run `next_tokens` ([B, n]) as the next positions after the prefix."""
        model = self.loaded.model
        kwargs = dict(self.model_kwargs)
        mask = kwargs["attention_mask"]
        kwargs["attention_mask"] = torch.cat([mask, mask.new_ones(mask.shape[0], next_tokens.shape[1])], dim=1)
        ids = torch.cat([self.input_ids, next_tokens], dim=1)
        return model.prepare_inputs_for_generation(ids, next_sequence_length=next_tokens.shape[1], **kwargs)


TokenSelector = Callable[[DecodeState], StepChoice]

_RECORD_FIELDS = ("saliency", "tau", "rejections", "fallback", "candidate_ids", "candidate_saliency")


@torch.no_grad()
def decode(
    loaded: LoadedModel,
    inputs: dict[str, torch.Tensor],
    max_new_tokens: int,
    generators: list[torch.Generator],
    select: TokenSelector,
) -> list[Generation]:
    """Runs prefill then one selector call per new token, until every row hit EOS or the limit."""
    model = loaded.model
    input_ids = inputs["input_ids"]
    batch = input_ids.shape[0]
    model_kwargs = {k: v for k, v in inputs.items() if k != "input_ids"}
    model_kwargs["use_cache"] = True
    eos = torch.tensor(sorted(loaded.eos_token_ids), device=input_ids.device)
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else int(eos[0])

    model_inputs = model.prepare_inputs_for_generation(input_ids, is_first_iteration=True, **model_kwargs)
    outputs = model(**model_inputs, return_dict=True)
    model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)

    state = DecodeState(
        loaded=loaded,
        input_ids=input_ids,
        logits=outputs.logits[:, -1].float(),
        model_kwargs=model_kwargs,
        prompt_length=input_ids.shape[1],
        step=0,
        generators=generators,
        finished=torch.zeros(batch, dtype=torch.bool, device=input_ids.device),
        history=[{"token_ids": [], "logprobs": []} for _ in range(batch)],
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
        outputs = model(**model_inputs, return_dict=True)
        model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
        state.model_kwargs = model_kwargs
        state.logits = outputs.logits[:, -1].float()

    return [Generation(**{k: v for k, v in record.items()}) for record in state.history]


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
