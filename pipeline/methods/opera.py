"""OPERA: over-trust penalty and retrospection-allocation (Huang et al., CVPR 2024), as its code
(`opera_beam_search` in the repo's transformers-4.29.2 fork), one sample at a time (the code's
batch size; its rollback is per sample).

Beam search in which, at each step s (s tokens generated), every beam scores its top
`num_attn_candidates` tokens c by their raw logits minus `penalty_weights` * phi(c):

- the last layer's attention row of c (a look-ahead forward of c), max over heads, normalised
  over all keys; W_c = the (s+1) x (s+1) lower-triangular window of these rows among the
  generated tokens (rows of the tokens generated so far, and c's row last);
- column scores: for each column j, 1e-7 * prod_{i >= j} scale_factor * W_c[i, j] (held in
  float16, as the code does, which saturates above 65504); phi(c) = max_j of them, the
  knowledge-aggregation ("summary token") pattern; for the first 10 tokens phi(c) is instead
  minus c's attention on the image (the code's early-token rule);
- the other tokens' logits are -999, so log-softmax renormalises over the candidates.

Rollback: the summary location of each beam (the most common argmax_j over its candidates) is
kept per step. When, for every beam, the sample's location (the most common over beams) recurs
more than `threshold` times in that history, and it is at least 10, decoding returns to the step
after it (at most `num_attn_candidates` times per position, then one earlier, then never), with
that step's beams, and every token chosen there before is banned (logit -999) while the full
vocabulary, unpenalised, picks again. The cache is rebuilt by replaying the kept tokens on a copy
of the prompt's cache. Records `rollbacks`: the number of rollbacks of the sample.

With `penalty_weights` 0, `rollback` off and the candidates covering the vocabulary, this is
plain beam search (tests check it equals HF's).
"""

from __future__ import annotations

import torch

from pipeline import attention
from pipeline.api import Generation, LoadedModel
from pipeline.attention import AttentionPlan, AttentionRows
from pipeline.beams import BeamSearch
from pipeline.config import MethodConfig
from pipeline.decoding import Stream, one_sample, placeholder_ids
from pipeline.methods import METHODS
from pipeline.methods.beam import new_search

EARLY_TOKENS = 10  # the code's fixed span of the image-attention rule and minimum rollback location
_BANNED = -999.0  # the code's logit for tokens outside the candidates


def column_scores(window: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """OPERA's per-column score of attention windows [..., n, n] (lower triangular): [..., n]."""
    n = window.shape[-1]
    lower = torch.ones(n, n, dtype=torch.bool, device=window.device).tril()
    products = torch.where(lower, scale_factor * window, torch.ones_like(window)).prod(dim=-2)
    return (1e-7 * products).to(torch.float16).to(window.dtype)


def normalised(row: torch.Tensor) -> torch.Tensor:
    return row / row.sum(-1, keepdim=True)


class _Sample:
    """OPERA on one sample: its beams' stream, beam state, attention windows and history."""

    def __init__(self, loaded: LoadedModel, inputs: dict[str, torch.Tensor], params: MethodConfig, max_new_tokens: int) -> None:
        self.params = params
        self.prompt_length = inputs["input_ids"].shape[1]
        layers = loaded.model.config.get_text_config().num_hidden_layers
        self.recorder = AttentionRows(layer=layers - 1)
        self.plan = AttentionPlan(output_start=self.prompt_length, rows=self.recorder)
        self.stream = Stream(loaded, inputs, num_beams=params.num_beams)
        self.search: BeamSearch = new_search(loaded, 1, params, max_new_tokens, inputs["input_ids"].device)
        visual = torch.tensor(sorted(loaded.adapter.visual_token_ids(loaded)), device=inputs["input_ids"].device)
        self.image_columns = torch.isin(self.stream.input_ids, visual)  # [N, T]
        beams = params.num_beams
        self.window = torch.zeros(beams, 0, 0, dtype=torch.float32)  # rows of the generated tokens
        self.history: list[dict] = []  # per step: beam state, window, and the choice made there
        self.locations: list[torch.Tensor] = []  # per step: each beam's summary location [N]
        self.rollbacks_at: dict[int, int] = {}
        self.banned: dict[int, torch.Tensor] = {}  # position -> flat (beam * V + token) ids
        self.rollbacks = 0

    def candidate_rows(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each candidate's normalised last-layer attention row over all keys: [N, C, T + s + 1]."""
        rows = []
        for column in range(tokens.shape[1]):
            self.stream.peek(tokens[:, column])
            rows.append(normalised(self.recorder.last.float()))
        return torch.stack(rows, dim=1)

    def penalised_logits(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates' penalised logits scattered into a -999 vocabulary, and each beam's summary
        location [N]."""
        params, step = self.params, self.search.step
        scores, tokens = logits.topk(min(params.num_attn_candidates, logits.shape[-1]), dim=-1)
        rows = self.candidate_rows(tokens)  # [N, C, T + s + 1]
        beams, candidates = tokens.shape
        window = torch.zeros(beams, candidates, step + 1, step + 1, dtype=rows.dtype)
        window[:, :, :step, :step] = self.window[:, None]
        window[:, :, step] = rows[..., self.prompt_length :]
        per_column = column_scores(window, params.scale_factor)  # [N, C, s + 1]
        summary, where = per_column.max(dim=-1)
        if step + 1 <= EARLY_TOKENS:
            penalty = -(rows[..., : self.prompt_length] * self.image_columns[:, None]).sum(-1)
        else:
            penalty = summary
        scores = scores - params.penalty_weights * penalty.to(scores.dtype)
        full = torch.full_like(logits, _BANNED).scatter(-1, tokens, scores)
        return full, where.mode(dim=-1).values

    def should_roll_back(self) -> int | None:
        """The position to go back to, or None (the code's rules, see the module docstring)."""
        beam_locations = torch.stack(self.locations, dim=-1)  # [N, steps]
        location = int(beam_locations[:, -1].mode().values)
        if not bool(((beam_locations == location).sum(-1) > self.params.threshold).all()) or location < EARLY_TOKENS:
            return None
        position = location + 1
        if position > self.search.step:  # the candidate's own column: no earlier step to redo
            return None
        limit = self.params.num_attn_candidates
        if self.rollbacks_at.get(position, 0) >= limit:
            position -= 1
            if self.rollbacks_at.get(position, 0) >= limit:
                return None
        self.rollbacks_at[position] = self.rollbacks_at.get(position, 0) + 1
        generated = self.search.step + 1
        if generated - position > self.params.window_size + 1:
            position = max(1, generated - self.params.window_size - 1)
        return position

    def roll_back(self, position: int, prompt_state: dict) -> torch.Tensor:
        """Returns to step `position` and gives its logits with the earlier choices there banned."""
        self.rollbacks += 1
        state = self.history[position]
        del self.history[position + 1 :], self.locations[position + 1 :]
        self.banned = {p: ids for p, ids in self.banned.items() if p <= position}
        self.search.restore(state["beams"])
        self.window = state["window"]
        self.stream.restore(prompt_state, replay=self.search.prefix())
        logits = self.stream.logits.float()
        logits = logits - (-_BANNED + logits.min(-1, keepdim=True).values)
        chosen = state["choice"]
        self.banned[position] = torch.cat([self.banned[position], chosen]) if position in self.banned else chosen
        flat = logits.reshape(1, -1).scatter(-1, self.banned[position][None], _BANNED)
        return flat.view_as(logits)

    @torch.no_grad()
    def run(self) -> Generation:
        vocab = None
        with attention.active(self.plan):
            self.stream.prefill()
            prompt_state = self.stream.snapshot()
            while True:
                logits = self.stream.logits.float()
                vocab = logits.shape[-1]
                self.history.append({"beams": self.search.snapshot(), "window": self.window.clone()})
                full, locations = self.penalised_logits(logits)
                self.locations.append(locations)
                position = self.should_roll_back() if self.params.rollback else None
                if position is not None:
                    full = self.roll_back(position, prompt_state)
                step = self.search.step
                rows, tokens = self.search.advance(torch.log_softmax(full, dim=-1))
                self.history[step]["choice"] = rows * vocab + tokens  # flat ids, as the code bans them
                if self.search.done:
                    break
                self.stream.reorder(rows)
                self.stream.feed(tokens)
                new_row = normalised(self.recorder.last.float())[:, self.prompt_length :]  # [N, s + 1]
                window = torch.zeros(len(rows), step + 1, step + 1)
                window[:, :step, :step] = self.window[rows]
                window[:, step] = new_row
                self.window = window
        return self.search.best([{"rollbacks": [self.rollbacks]}])[0]


class OperaMethod:
    """pipeline.api.DecodingMethod for `opera`."""

    def prepare(self, loaded: LoadedModel, params: MethodConfig) -> None:
        """Installs the halleval attention, which records the last layer's attention rows."""
        attention.install(loaded.model)

    def generate(
        self, loaded: LoadedModel, inputs: dict[str, torch.Tensor], params: MethodConfig, max_new_tokens: int,
        generators: list[torch.Generator],
    ) -> list[Generation]:
        batch = inputs["input_ids"].shape[0]
        placeholders = placeholder_ids(loaded)
        return [_Sample(loaded, one_sample(inputs, row, placeholders), params, max_new_tokens).run() for row in range(batch)]


METHODS.register("opera")(OperaMethod)
