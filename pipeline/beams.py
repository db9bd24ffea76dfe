"""Beam state for beam methods (beam search, OPERA): HF's beam search, one step at a time.

`BeamSearch.advance` is the step of transformers' vectorised `_beam_search` (5.x) with
`early_stopping=False`, `num_return_sequences=1`: over all num_beams x V continuations of a
sample, keep the top 2·N (more with several EOS ids); those that end (EOS or the length limit)
among the first N become finished hypotheses scored sum(log p) / length ** length_penalty; the
best N that do not end run on; a sample stops when no running beam can beat its worst finished
one (HF's heuristic: the best running score at the current length). It returns which row each
new beam continues (for `Stream.reorder`) and its token; `snapshot`/`restore` give OPERA its
rollback. Scores are float32 as in HF, so a beam run equals `generate(num_beams=N)` token for
token. Each beam also carries the per-token log-probs of the distribution its tokens were chosen
from (the method's, e.g. OPERA's penalised one), which become the Parquet `logprobs`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from pipeline.api import Generation

_NEG = -1.0e9  # HF's "impossible" score


def _gather(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tensor [B, n, ...] rows picked per sample by index [B, k]: [B, k, ...]."""
    shaped = index.view(*index.shape, *([1] * (tensor.dim() - 2))).expand(*index.shape, *tensor.shape[2:])
    return tensor.gather(1, shaped)


@dataclass
class BeamState:
    """All tensors of a beam search (per sample b, beam n)."""

    running_tokens: torch.Tensor  # [B, N, max_new] long
    running_logprobs: torch.Tensor  # [B, N, max_new]
    running_scores: torch.Tensor  # [B, N] sum of log-probs
    finished_tokens: torch.Tensor  # [B, N, max_new]
    finished_logprobs: torch.Tensor  # [B, N, max_new]
    finished_scores: torch.Tensor  # [B, N] length-penalised
    finished_lengths: torch.Tensor  # [B, N] long
    is_finished: torch.Tensor  # [B, N] bool
    improvable: torch.Tensor  # [B, 1] bool: a running beam may still beat the finished ones
    step: int = 0
    done: bool = False

    def copy(self) -> BeamState:
        return BeamState(**{f.name: (v.clone() if isinstance(v := getattr(self, f.name), torch.Tensor) else v) for f in fields(self)})


class BeamSearch:
    """HF beam search over `batch` samples with `num_beams` beams each (rows b * N + n).

    Args:
        batch: samples.
        num_beams: N.
        max_new_tokens: the length limit (a beam reaching it finishes).
        length_penalty: finished score = sum log p / length ** length_penalty.
        eos: tensor of EOS ids.
        pad_id: fill value of unused token slots.
        device: where the state lives.
    """

    def __init__(self, batch: int, num_beams: int, max_new_tokens: int, length_penalty: float, eos: torch.Tensor, pad_id: int, device) -> None:
        self.batch, self.num_beams, self.max_new_tokens = batch, num_beams, max_new_tokens
        self.length_penalty = length_penalty
        self.eos = eos
        self.keep = max(2, 1 + len(eos)) * num_beams
        tokens = torch.full((batch, num_beams, max_new_tokens), pad_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((batch, num_beams, max_new_tokens), dtype=torch.float32, device=device)
        running_scores = torch.zeros((batch, num_beams), dtype=torch.float32, device=device)
        running_scores[:, 1:] = _NEG  # only the first beam's continuations count at step 0
        self.state = BeamState(
            running_tokens=tokens, running_logprobs=logprobs, running_scores=running_scores,
            finished_tokens=tokens.clone(), finished_logprobs=logprobs.clone(),
            finished_scores=torch.full((batch, num_beams), _NEG, dtype=torch.float32, device=device),
            finished_lengths=torch.zeros((batch, num_beams), dtype=torch.long, device=device),
            is_finished=torch.zeros((batch, num_beams), dtype=torch.bool, device=device),
            improvable=torch.ones((batch, 1), dtype=torch.bool, device=device),
        )

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def done(self) -> bool:
        return self.state.done

    def snapshot(self) -> BeamState:
        return self.state.copy()

    def restore(self, state: BeamState) -> None:
        self.state = state.copy()

    def prefix(self) -> torch.Tensor:
        """The running beams' tokens so far: [B * N, step]."""
        return self.state.running_tokens[:, :, : self.state.step].reshape(self.batch * self.num_beams, -1)

    def advance(self, log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from each running beam's next-token log-probs [B * N, V] (float32).

        Returns:
            (rows, tokens): each new running beam continues row `rows[i]` with `tokens[i]`, both
            [B * N], in the layout `Stream.reorder` takes.
        """
        s, batch, beams = self.state, self.batch, self.num_beams
        step, vocab = s.step, log_probs.shape[-1]
        per_beam = log_probs.view(batch, beams, vocab)
        totals = (per_beam + s.running_scores[:, :, None]).view(batch, beams * vocab)
        top_scores, top_index = totals.topk(self.keep, dim=-1)
        source, tokens = top_index // vocab, top_index % vocab
        candidate_tokens = _gather(s.running_tokens, source)
        candidate_tokens[:, :, step] = tokens
        candidate_logprobs = _gather(s.running_logprobs, source)
        candidate_logprobs[:, :, step] = per_beam.gather(1, source[:, :, None].expand(-1, -1, vocab)).gather(2, tokens[:, :, None])[..., 0]
        ends = torch.isin(tokens, self.eos) | (step + 1 >= self.max_new_tokens)

        # The best N that do not end run on.
        running = top_scores + ends.to(torch.float32) * _NEG
        keep = running.topk(beams, dim=-1).indices
        s.running_tokens, s.running_logprobs = _gather(candidate_tokens, keep), _gather(candidate_logprobs, keep)
        s.running_scores, rows = _gather(running, keep), _gather(source, keep)

        # Those among the first N that end become finished hypotheses if they beat the worst.
        just_finished = ends & (torch.arange(self.keep, device=ends.device) < beams)
        finished = top_scores / ((step + 1) ** self.length_penalty)
        finished = finished + (~s.improvable).to(torch.float32) * _NEG + (~just_finished).to(torch.float32) * _NEG
        merged = torch.cat([s.finished_scores, finished], dim=1).topk(beams, dim=-1).indices
        lengths = torch.full_like(tokens, step + 1)
        s.finished_tokens = _gather(torch.cat([s.finished_tokens, candidate_tokens], 1), merged)
        s.finished_logprobs = _gather(torch.cat([s.finished_logprobs, candidate_logprobs], 1), merged)
        s.finished_lengths = _gather(torch.cat([s.finished_lengths, lengths], 1), merged)
        s.is_finished = _gather(torch.cat([s.is_finished, just_finished], 1), merged)
        s.finished_scores = _gather(torch.cat([s.finished_scores, finished], 1), merged)

        s.step = step + 1
        best_possible = s.running_scores[:, :1] / (s.step**self.length_penalty)
        worst_finished = torch.where(s.is_finished, s.finished_scores.min(dim=1, keepdim=True).values, _NEG)
        s.improvable = s.improvable & (best_possible > worst_finished).any(dim=-1, keepdim=True)
        s.done = not (bool(s.improvable.any()) and not bool(ends.all()))
        offsets = torch.arange(batch, device=rows.device)[:, None] * beams
        return (rows + offsets).view(-1), s.running_tokens[:, :, step].reshape(-1)

    def best(self, method_fields: list[dict[str, list]] | None = None) -> list[Generation]:
        """Each sample's best finished hypothesis."""
        s = self.state
        results = []
        for b in range(self.batch):
            length = int(s.finished_lengths[b, 0])
            results.append(Generation(
                token_ids=s.finished_tokens[b, 0, :length].tolist(),
                logprobs=s.finished_logprobs[b, 0, :length].tolist(),
                method_fields=method_fields[b] if method_fields else None,
            ))
        return results
