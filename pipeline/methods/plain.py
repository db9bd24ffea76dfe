"""Plain decoding: greedy (argmax) and ancestral sampling at a temperature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pipeline.api import Generation, LoadedModel
from pipeline.config import MethodConfig
from pipeline.decoding import TokenSelector, decode, greedy_select, make_sample_select
from pipeline.methods import METHODS


@dataclass(frozen=True)
class PlainDecoding:
    """A decoding method that is only a token selector over the shared decode loop."""

    make_selector: Callable[[MethodConfig], TokenSelector]

    def prepare(self, loaded: LoadedModel, params: MethodConfig) -> None:
        """Plain decoding runs the model's own attention unchanged."""

    def generate(
        self,
        loaded: LoadedModel,
        inputs: dict[str, torch.Tensor],
        params: MethodConfig,
        max_new_tokens: int,
        generators: list[torch.Generator],
    ) -> list[Generation]:
        return decode(loaded, inputs, max_new_tokens, generators, self.make_selector(params))


METHODS.register("greedy")(lambda: PlainDecoding(lambda params: greedy_select))
METHODS.register("sample")(lambda: PlainDecoding(lambda params: make_sample_select(params.temperature)))
