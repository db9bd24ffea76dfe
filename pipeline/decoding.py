"""The decode loop every decoding method shares, and the stream of forwards it is built from.

A `Stream` is one sequence of forwards over its own KV cache: a prompt (its own inputs, e.g. the
real image or VCD's distorted copy) and the tokens fed after it. It uses the model's own input
preparation (`prepare_inputs_for_generation`, as `generate` does), so rope offsets, visual inputs
on the first step and left padding behave exactly as in transformers for every family. It can
expand to beams, reorder its rows (beam search), run a candidate without keeping it (OPERA's
look-ahead), and replay tokens onto a copy of its prompt state (rollback).

`decode` is the per-token loop: after prefill, one `TokenSelector` call per step picks the next
token of every row from the `DecodeState` (the main stream's logits, the logits of any extra
streams, the per-layer hidden states when asked for, and saliency when asked for), and every
stream is fed that token. Beam methods drive streams themselves (`pipeline.beams`).

Two options change how the forwards run (both through `pipeline.attention`, which the method
installs in `prepare`): `locore` modifies decode-step attention, and `saliency_layers` makes the
forward that produces each step's logits differentiable with respect to those layers' attention,
so a selector can score candidates with `DecodeState.saliency`. That forward is the single
position P-1 that predicts the next token; for the first step the prompt is prefilled without
its last token, which then runs alone like any decode step.

Logits stay in the model's dtype when it is float32 or float64 (half precision is upcast to
float32), so float64 runs compare log-probs to 1e-9.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pipeline import attention
from pipeline.api import Generation, LoadedModel
from pipeline.attention import AttentionPlan, Locore, SaliencyCapture
from pipeline.saliency import KeySpan, candidate_saliency, key_span_mask

# The model kwargs with one entry per token, which `_update_model_kwargs_for_generation` extends.
_PER_TOKEN_KWARGS = ("attention_mask", "position_ids", "token_type_ids", "mm_token_type_ids")


def _logits_dtype(logits: torch.Tensor) -> torch.Tensor:
    """Next-token logits, detached, at least float32 (float64 stays float64)."""
    return logits.detach().to(torch.promote_types(logits.dtype, torch.float32))


def _detach_cache(cache: Any) -> None:
    """Cuts the graph a differentiable forward left in the cache (values are unchanged), so the
    next forward neither extends nor keeps it."""
    for layer in cache.layers:
        layer.keys = layer.keys.detach()
        layer.values = layer.values.detach()


def _without_last_position(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The prompt's model kwargs minus the last token (every per-token tensor's last column)."""
    return {k: v[..., :-1] if k in _PER_TOKEN_KWARGS and v is not None else v for k, v in model_kwargs.items()}


# Which tensor lists the patches of each sample, for processors that flatten a batch's patches.
_GRIDS = {"pixel_values": "image_grid_thw", "pixel_values_videos": "video_grid_thw"}


def placeholder_ids(loaded: LoadedModel) -> list[int]:
    """The ids of the tokens a model replaces by visual features (not the start/end markers)."""
    config = loaded.model.config
    return [i for i in (getattr(config, "image_token_id", None), getattr(config, "video_token_id", None)) if i is not None]


def row_slices(inputs: dict[str, torch.Tensor], key: str, placeholders: list[int]) -> list[slice]:
    """The part of `inputs[key]` that belongs to each sample of the batch: its row, or, for a
    visual tensor that lists a batch's patches or tiles (Qwen-VL, InternVL), the sample's share,
    from the grid of each visual or else the sample's count of placeholder tokens.

    Raises:
        ValueError: the tensor cannot be split by sample.
    """
    tensor, input_ids = inputs[key], inputs["input_ids"]
    batch = input_ids.shape[0]
    grid = inputs.get(_GRIDS.get(key, ""))
    if grid is not None and len(grid) == batch:
        counts = grid.prod(-1).tolist()
    elif tensor.shape[0] == batch or not key.startswith("pixel_values"):
        counts = [1] * batch
    else:
        tokens = torch.isin(input_ids, torch.tensor(placeholders, device=input_ids.device)).sum(-1).tolist()
        if sum(tokens) == 0 or sum(tokens) % tensor.shape[0]:
            raise ValueError(f"cannot split {key} {tuple(tensor.shape)} between {batch} samples")
        per_part = sum(tokens) // tensor.shape[0]
        counts = [count // per_part for count in tokens]
    ends = torch.tensor(counts).cumsum(0).tolist()
    return [slice(start, end) for start, end in zip([0, *ends[:-1]], ends)]


def one_sample(inputs: dict[str, torch.Tensor], row: int, placeholders: list[int]) -> dict[str, torch.Tensor]:
    """The inputs of sample `row` alone (a batch of one; its left padding is kept)."""
    return {key: value[row_slices(inputs, key, placeholders)[row]] for key, value in inputs.items()}


class Stream:
    """One sequence of forwards over its own KV cache.

    Args:
        loaded: the model.
        inputs: the adapter's left-padded batch (this stream's prompt).
        capture: when set, every decode forward is differentiable through the capture's target
            layers (saliency), and the prompt's last token runs as the first such forward.
        hidden_states: keep each forward's per-layer hidden states of the last position.
        num_beams: expand every row to this many beams before prefill (as `generate` does).

    Attributes:
        input_ids: [rows, T] prompt plus the tokens fed so far.
        logits: [rows, V] next-token logits of the last forward (see module docstring for dtype).
        hidden_states: per hidden-state index (0 = embeddings) the last position's [rows, H], or
            None.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        inputs: dict[str, torch.Tensor],
        capture: SaliencyCapture | None = None,
        hidden_states: bool = False,
        num_beams: int = 1,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.capture = capture
        self.keep_hidden_states = hidden_states
        input_ids = inputs["input_ids"]
        kwargs = {k: v for k, v in inputs.items() if k != "input_ids"}
        kwargs["use_cache"] = True
        if "position_ids" in inspect.signature(self.model.forward).parameters:
            # As `generate` does: positions that skip left padding (3-D M-RoPE ones for Qwen-VL).
            kwargs["position_ids"] = self.model._prepare_position_ids_for_generation(input_ids, kwargs)
        if num_beams > 1:
            # As `generate` does: encode the visuals once, then expand their features with the
            # text (a processor that flattens the batch's patches cannot be expanded by row).
            kwargs = self.model._maybe_prepare_encoder_kwargs_for_generation(
                input_ids, kwargs, "input_ids", self.model.generation_config
            )
            input_ids, kwargs = self.model._expand_inputs_for_generation(
                expand_size=num_beams, input_ids=input_ids, **kwargs
            )
        self.input_ids = input_ids
        self.model_kwargs = kwargs
        self.logits: torch.Tensor | None = None
        self.hidden_states: tuple[torch.Tensor, ...] | None = None

    @property
    def cache(self) -> Any:
        return self.model_kwargs.get("cache")

    def _run(self, model_inputs: dict[str, Any], differentiable: bool) -> Any:
        extra = {"output_hidden_states": True} if self.keep_hidden_states else {}
        if not differentiable or self.capture is None:
            return self.model(**model_inputs, return_dict=True, **extra)
        self.capture.clear()
        with torch.enable_grad(), self.capture.recording_head_input(self.model):
            outputs = self.model(**model_inputs, return_dict=True, **extra)
            self.capture.logits = outputs.logits[:, -1]
        _detach_cache(outputs.cache)
        return outputs

    def _keep(self, outputs: Any, num_new_tokens: int = 1) -> None:
        self.model_kwargs = self.model._update_model_kwargs_for_generation(
            outputs, self.model_kwargs, num_new_tokens=num_new_tokens
        )
        self.logits = _logits_dtype(outputs.logits[:, -1])
        if self.keep_hidden_states:
            self.hidden_states = tuple(h[:, -1].detach() for h in outputs.hidden_states)

    def prefill(self) -> None:
        """Runs the prompt (without its last token first, when saliency needs that token's
        forward to be differentiable)."""
        if self.capture is None:
            model_inputs = self.model.prepare_inputs_for_generation(
                self.input_ids, is_first_iteration=True, **self.model_kwargs
            )
            self._keep(self._run(model_inputs, differentiable=False))
            return
        self.model_kwargs = _without_last_position(self.model_kwargs)
        model_inputs = self.model.prepare_inputs_for_generation(
            self.input_ids[:, :-1], is_first_iteration=True, **self.model_kwargs
        )
        outputs = self._run(model_inputs, differentiable=False)
        self.model_kwargs = self.model._update_model_kwargs_for_generation(outputs, self.model_kwargs)
        model_inputs = self.model.prepare_inputs_for_generation(self.input_ids, next_sequence_length=1, **self.model_kwargs)
        self._keep(self._run(model_inputs, differentiable=True))

    def feed(self, tokens: torch.Tensor) -> None:
        """Runs `tokens` ([rows]) as the next position and keeps them."""
        self.input_ids = torch.cat([self.input_ids, tokens[:, None]], dim=1)
        model_inputs = self.model.prepare_inputs_for_generation(self.input_ids, next_sequence_length=1, **self.model_kwargs)
        self._keep(self._run(model_inputs, differentiable=True))

    def model_inputs(self, next_tokens: torch.Tensor) -> dict[str, Any]:
        """Inputs that run `next_tokens` ([rows, n]) as the next positions, leaving the stream's
        kwargs as they are."""
        kwargs = dict(self.model_kwargs)
        mask = kwargs["attention_mask"]
        kwargs["attention_mask"] = torch.cat([mask, mask.new_ones(mask.shape[0], next_tokens.shape[1])], dim=1)
        if kwargs.get("position_ids") is not None:
            # What `_update_model_kwargs_for_generation` would add for these tokens.
            positions = kwargs["position_ids"]
            shape = [1] * (positions.dim() - 1) + [-1]
            steps = torch.arange(1, next_tokens.shape[1] + 1, dtype=positions.dtype, device=positions.device)
            kwargs["position_ids"] = torch.cat([positions, positions[..., -1:] + steps.view(*shape)], dim=-1)
        ids = torch.cat([self.input_ids, next_tokens], dim=1)
        return self.model.prepare_inputs_for_generation(ids, next_sequence_length=next_tokens.shape[1], **kwargs)

    def peek(self, tokens: torch.Tensor) -> Any:
        """Runs `tokens` ([rows]) as the next position and forgets them again (the cache is cropped
        back): a look-ahead, e.g. OPERA's attention of a candidate token. Returns the outputs."""
        outputs = self.model(**self.model_inputs(tokens[:, None]), return_dict=True)
        self.cache.crop(-1)
        return outputs

    def reorder(self, rows: torch.Tensor) -> None:
        """Makes row i a copy of row `rows[i]` (beam search): cache, tokens and per-row kwargs."""
        self.cache.reorder_cache(rows)
        self.input_ids = self.input_ids[rows]
        for key in _PER_TOKEN_KWARGS:
            value = self.model_kwargs.get(key)
            if value is not None:
                self.model_kwargs[key] = value[:, rows] if key == "position_ids" and value.dim() == 3 else value[rows]

    def snapshot(self) -> dict[str, Any]:
        """The stream's state (cache included), for `restore`."""
        return {"input_ids": self.input_ids, "model_kwargs": copy.deepcopy(self.model_kwargs), "logits": self.logits}

    def restore(self, state: dict[str, Any], replay: torch.Tensor | None = None) -> None:
        """Goes back to a `snapshot`, then runs `replay` ([rows, n] tokens, if any) in one forward."""
        self.input_ids = state["input_ids"]
        self.model_kwargs = copy.deepcopy(state["model_kwargs"])
        self.logits = state["logits"]
        if replay is None or replay.shape[1] == 0:
            return
        outputs = self.model(**self.model_inputs(replay), return_dict=True)
        self.input_ids = torch.cat([self.input_ids, replay], dim=1)
        self._keep(outputs, num_new_tokens=replay.shape[1])


@dataclass
class StepChoice:
    """A selector's decision for one step: the next token of every row and its records.

    Attributes:
        token_ids: [B] the tokens.
        logprobs: [B] log-prob of each token under the distribution the method picked it from;
            None means log_softmax of the main stream's logits (greedy's distribution).
        saliency ... candidate_saliency: the SGRS / saliency records (one entry per row).
        fields: method-specific records, name -> one value per row (Parquet `method_fields`).
    """

    token_ids: torch.Tensor
    logprobs: torch.Tensor | None = None
    saliency: list[float | None] | None = None
    tau: list[float] | None = None
    rejections: list[int] | None = None
    fallback: list[bool] | None = None
    candidate_ids: list[list[int]] | None = None
    candidate_saliency: list[list[float]] | None = None
    fields: dict[str, list] | None = None


# A StepChoice's per-row records kept under the same name in Generation.
_RECORD_FIELDS = ("saliency", "tau", "rejections", "fallback", "candidate_ids", "candidate_saliency")


@dataclass
class DecodeState:
    """What a selector may read at a step.

    `logits` are the main stream's next-token logits [B, V]; `model_kwargs` hold its cache and
    attention mask of the sequence so far; `streams` the extra streams by name (their `logits`);
    `hidden_states` the main stream's per-layer last-position states when the loop keeps them.
    """

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
    streams: dict[str, Stream] = field(default_factory=dict)
    hidden_states: tuple[torch.Tensor, ...] | None = None
    _span: tuple[tuple[int, KeySpan], torch.Tensor] | None = field(default=None, repr=False)

    def span(self, span: KeySpan) -> torch.Tensor:
        """The [B, T] key span mask of saliency at this step (built once per step: scoring and
        `span_is_empty` both read it)."""
        key = (self.step, span)
        if self._span is None or self._span[0] != key:
            visual_ids = self.loaded.adapter.visual_token_ids(self.loaded)
            self._span = key, key_span_mask(self.input_ids, self.prompt_length, visual_ids, span)
        return self._span[1]

    def saliency(self, candidates: torch.Tensor, span: KeySpan) -> torch.Tensor:
        """S(c) of each row's candidates [B, K] as the next token: [B, K] float64. Once per step.
        A row whose span is empty (`outputs` at the first step) scores 0; see `span_is_empty`.

        Raises:
            RuntimeError: the loop was not asked for saliency (`saliency_layers`).
        """
        if self.capture is None:
            raise RuntimeError("saliency needs decode(..., saliency_layers=...)")
        return candidate_saliency(self.capture, candidates, self.span(span))

    def span_is_empty(self, span: KeySpan) -> list[bool]:
        """Per row: the key span has no key, so S carries no evidence (accept, record null)."""
        return (~self.span(span).any(dim=-1)).tolist()


TokenSelector = Callable[[DecodeState], StepChoice]


@torch.no_grad()
def decode(
    loaded: LoadedModel,
    inputs: dict[str, torch.Tensor],
    max_new_tokens: int,
    generators: list[torch.Generator],
    select: TokenSelector,
    locore: Locore | None = None,
    saliency_layers: tuple[int, ...] | None = None,
    extra_streams: dict[str, dict[str, torch.Tensor]] | None = None,
    hidden_states: bool = False,
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
        extra_streams: name -> inputs of further streams (same prompt length), each over its own
            cache and fed the same tokens (VCD's distorted image).
        hidden_states: give the selector the per-layer hidden states (DoLa).
    """
    input_ids = inputs["input_ids"]
    batch, prompt_length = input_ids.shape
    eos = torch.tensor(sorted(loaded.eos_token_ids), device=input_ids.device)
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else int(eos[0])
    capture = SaliencyCapture(frozenset(saliency_layers)) if saliency_layers else None
    plan = AttentionPlan(output_start=prompt_length, locore=locore, capture=capture)

    with attention.active(plan):
        main = Stream(loaded, inputs, capture=capture, hidden_states=hidden_states)
        streams = {name: Stream(loaded, extra) for name, extra in (extra_streams or {}).items()}
        for stream in (main, *streams.values()):
            stream.prefill()
        state = DecodeState(
            loaded=loaded,
            input_ids=main.input_ids,
            logits=main.logits,
            model_kwargs=main.model_kwargs,
            prompt_length=prompt_length,
            step=0,
            generators=generators,
            finished=torch.zeros(batch, dtype=torch.bool, device=input_ids.device),
            history=[{"token_ids": [], "logprobs": []} for _ in range(batch)],
            capture=capture,
            streams=streams,
            hidden_states=main.hidden_states,
        )
        for step in range(max_new_tokens):
            state.step = step
            choice = select(state)
            tokens = torch.where(state.finished, torch.full_like(choice.token_ids, pad_id), choice.token_ids)
            if choice.logprobs is None:
                logprobs = torch.log_softmax(state.logits, dim=-1).gather(1, tokens[:, None]).squeeze(1)
            else:
                logprobs = choice.logprobs
            _record(state, choice, tokens, logprobs)
            state.finished |= torch.isin(tokens, eos)
            if bool(state.finished.all()) or step == max_new_tokens - 1:
                state.input_ids = torch.cat([state.input_ids, tokens[:, None]], dim=1)
                break
            for stream in (main, *streams.values()):
                stream.feed(tokens)
            state.input_ids, state.logits, state.model_kwargs = main.input_ids, main.logits, main.model_kwargs
            state.hidden_states = main.hidden_states

    return [generation_of(record) for record in state.history]


def _record(state: DecodeState, choice: StepChoice, tokens: torch.Tensor, logprobs: torch.Tensor) -> None:
    for row in range(len(state.history)):
        if state.finished[row]:
            continue
        record = state.history[row]
        record["token_ids"].append(int(tokens[row]))
        record["logprobs"].append(float(logprobs[row]))
        for name in _RECORD_FIELDS:
            values = getattr(choice, name)
            if values is not None:
                record.setdefault(name, []).append(values[row])
        for name, values in (choice.fields or {}).items():
            record.setdefault("method_fields", {}).setdefault(name, []).append(values[row])


def generation_of(record: dict[str, Any]) -> Generation:
    """A Generation from one row's accumulated records."""
    return Generation(**record)


def greedy_select(state: DecodeState) -> StepChoice:
    return StepChoice(token_ids=state.logits.argmax(dim=-1))


def sample_from(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One draw per row, each from that row's own generator (batch-size independent)."""
    draws = [torch.multinomial(probs[row], 1, generator=gen) for row, gen in enumerate(generators)]
    return torch.cat(draws)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus truncation (Holtzman et al. 2020, as HF's TopPLogitsWarper): the smallest set of
    most likely tokens whose probability reaches `top_p` keeps its logits, the rest get -inf.
    `top_p` = 1 returns the logits unchanged."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - top_p)
    drop_sorted[..., -1:] = False  # always keep the most likely token
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_step(logits: torch.Tensor, generators: list[torch.Generator], temperature: float, top_p: float) -> StepChoice:
    """One ancestral-sampling step from softmax(top_p_filter(logits / T)); the record is the
    log-prob under that (truncated, renormalised) distribution."""
    scaled = top_p_filter(logits / temperature, top_p)
    tokens = sample_from(torch.softmax(scaled, dim=-1), generators)
    log_probs = torch.log_softmax(scaled, dim=-1).gather(1, tokens[:, None]).squeeze(1)
    return StepChoice(token_ids=tokens, logprobs=log_probs)


def make_sample_select(temperature: float, top_p: float = 1.0) -> TokenSelector:
    def select(state: DecodeState) -> StepChoice:
        return sample_step(state.logits, state.generators, temperature, top_p)

    return select
