"""Beam search (the paper's Table 1 "Beam Search" row), token for token HF's
`generate(num_beams=N, length_penalty=...)`: per step the log-softmax of each beam's logits
(float32, as HF) goes into `pipeline.beams.BeamSearch`, the stream's rows follow the surviving
beams (cache reorder) and are fed their new tokens."""

from __future__ import annotations

import torch

from pipeline.api import Generation, LoadedModel
from pipeline.beams import BeamSearch
from pipeline.config import MethodConfig
from pipeline.decoding import Stream
from pipeline.methods import METHODS


def new_search(loaded: LoadedModel, batch: int, params: MethodConfig, max_new_tokens: int, device) -> BeamSearch:
    eos = torch.tensor(sorted(loaded.eos_token_ids), device=device)
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else int(eos[0])
    return BeamSearch(batch, params.num_beams, max_new_tokens, params.length_penalty, eos, pad_id, device)


class BeamMethod:
    """pipeline.api.DecodingMethod for `beam`."""

    def prepare(self, loaded: LoadedModel, params: MethodConfig) -> None:
        """Nothing to install: beam search runs the model's own attention."""

    @torch.no_grad()
    def generate(
        self, loaded: LoadedModel, inputs: dict[str, torch.Tensor], params: MethodConfig, max_new_tokens: int,
        generators: list[torch.Generator],
    ) -> list[Generation]:
        stream = Stream(loaded, inputs, num_beams=params.num_beams)
        stream.prefill()
        search = new_search(loaded, inputs["input_ids"].shape[0], params, max_new_tokens, inputs["input_ids"].device)
        while True:
            rows, tokens = search.advance(torch.log_softmax(stream.logits.float(), dim=-1))
            if search.done:
                return search.best()
            stream.reorder(rows)
            stream.feed(tokens)


METHODS.register("beam")(BeamMethod)
