"""How a per-token decoding method is put together: a token selector over the shared decode loop,
plus what its forwards need (LocoRE, saliency, hidden states, extra streams). Private module
(leading underscore), so the METHODS registry does not import it as a plugin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pipeline import attention
from pipeline.api import Generation, LoadedModel
from pipeline.attention import Locore
from pipeline.config import MethodConfig
from pipeline.decoding import DecodeState, StepChoice, TokenSelector, decode

# Builds a method's extra streams (name -> inputs) from the batch: VCD's distorted image.
StreamInputs = Callable[
    [LoadedModel, dict[str, torch.Tensor], MethodConfig, list[torch.Generator]], dict[str, dict[str, torch.Tensor]]
]


def recording_saliency(select: TokenSelector, span: str) -> TokenSelector:
    """Wraps a selector so each step also records the saliency of the token it picked (null
    where the key span is empty: no evidence)."""

    def recording(state: DecodeState) -> StepChoice:
        choice = select(state)
        scores = state.saliency(choice.token_ids[:, None], span)[:, 0].tolist()
        empty = state.span_is_empty(span)
        choice.saliency = [None if none else score for score, none in zip(scores, empty)]
        return choice

    return recording


@dataclass(frozen=True)
class SelectorMethod:
    """A decoding method (pipeline.api.DecodingMethod) built from a token selector.

    Attributes:
        make_selector: builds a fresh selector (with fresh per-row state) for one batch.
        locore: run LocoRE in the decode steps.
        scores_saliency: the selector itself scores candidates (SGRS); other selectors record
            the accepted token's saliency only when `params.record_saliency` is set.
        hidden_states: the selector reads per-layer hidden states (DoLa).
        extra_streams: builds further streams the selector reads (VCD), or None.
    """

    make_selector: Callable[[MethodConfig], TokenSelector]
    locore: bool = False
    scores_saliency: bool = False
    hidden_states: bool = False
    extra_streams: StreamInputs | None = None

    def _needs_saliency(self, params: MethodConfig) -> bool:
        return self.scores_saliency or getattr(params, "record_saliency", False)

    def prepare(self, loaded: LoadedModel, params: MethodConfig) -> None:
        """Installs the halleval attention when LocoRE or saliency needs it; plain decoding keeps
        the model's own attention untouched."""
        if self.locore or self._needs_saliency(params):
            attention.install(loaded.model)

    def generate(
        self,
        loaded: LoadedModel,
        inputs: dict[str, torch.Tensor],
        params: MethodConfig,
        max_new_tokens: int,
        generators: list[torch.Generator],
    ) -> list[Generation]:
        adapter = loaded.adapter
        select = self.make_selector(params)
        saliency_layers = None
        if self._needs_saliency(params):
            saliency_layers = tuple(params.target_layers or adapter.default_target_layers)
            if not self.scores_saliency:
                select = recording_saliency(select, params.key_span)
        locore = None
        if self.locore:
            locore = Locore(
                layers=tuple(params.locore_layers or adapter.default_locore_layers),
                beta=adapter.default_locore_beta if params.beta is None else params.beta,
                window=params.locore_window,
                renormalize=params.renormalize,
            )
        streams = self.extra_streams(loaded, inputs, params, generators) if self.extra_streams else None
        return decode(
            loaded, inputs, max_new_tokens, generators, select, locore=locore, saliency_layers=saliency_layers,
            extra_streams=streams, hidden_states=self.hidden_states,
        )
