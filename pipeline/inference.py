"""The Ray Data inference stage: a UDF class that holds one model and turns sample rows into
generation rows (GENERATION_SCHEMA). Heavy set-up happens once, in `__init__`, per actor.

A bad sample never kills the batch: an undecodable image or a failed generation becomes a row
with `error` set, and the rest of the batch is generated as usual.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pyarrow as pa
import torch

from pipeline.api import Generation, LoadedModel, Sample, Visual
from pipeline.config import RunConfig
from pipeline.methods import METHODS
from pipeline.models import MODELS
from pipeline.schema import to_table
from pipeline.visuals import load_visual

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def sample_seed(seed: int, sample_id: str) -> int:
    """The seed of one sample's generator: independent of batch, actor and order."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def token_pieces(tokenizer: Any, token_ids: list[int]) -> tuple[str, list[str], list[int]]:
    """Decoded text, each token's text piece and its start offset in the text.

    Offsets come from decoding growing prefixes, so they agree with the text users see even
    where the tokenizer merges or drops spaces.
    """
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    pieces, offsets = [], []
    previous = ""
    for end in range(1, len(token_ids) + 1):
        current = tokenizer.decode(token_ids[:end], skip_special_tokens=True)
        common = len(previous)
        while common and not current.startswith(previous[:common]):
            common -= 1
        piece = current[common:]
        start = common + (len(piece) - len(piece.lstrip()))
        pieces.append(piece)
        offsets.append(min(start, len(text)))
        previous = current
    return text, pieces, offsets


class InferenceStage:
    """Ray Data UDF: `ds.map_batches(InferenceStage, fn_constructor_kwargs={"config_json": ...})`.

    Args:
        config_json: the run's RunConfig as JSON (plain data, so Ray can ship it to any node).
        benchmark_version: the reader's version, recorded in every row.
    """

    def __init__(self, config_json: str, benchmark_version: str) -> None:
        self.config = RunConfig.model_validate_json(config_json)
        self.benchmark_version = benchmark_version
        device = "cuda" if torch.cuda.is_available() and self.config.resources.gpus_per_actor > 0 else "cpu"
        adapter = MODELS.get(self.config.model.name)()
        self.loaded: LoadedModel = adapter.load(self.config.model.checkpoint, _DTYPES[self.config.model.dtype], device)
        self.method = METHODS.get(self.config.method.name)()
        self.method.prepare(self.loaded, self.config.method)

    def __call__(self, batch: pa.Table) -> pa.Table:
        samples = [Sample.from_row(row) for row in batch.to_pylist()]
        rows: dict[str, dict[str, Any]] = {}
        ready: list[tuple[Sample, Visual]] = []
        for sample in samples:
            if sample.error:
                rows[sample.sample_id] = self._row(sample, error=sample.error)
                continue
            try:
                ready.append((sample, load_visual(sample, self.config.benchmark.num_frames)))
            except ValueError as error:
                rows[sample.sample_id] = self._row(sample, error=str(error))
        rows.update(self._generate(ready))
        return to_table([rows[sample.sample_id] for sample in samples])

    def _generate(self, ready: list[tuple[Sample, Visual]]) -> dict[str, dict[str, Any]]:
        if not ready:
            return {}
        start = time.perf_counter()
        try:
            generations = self._generate_batch(ready)
        except Exception as error:  # noqa: BLE001 - isolate the failing sample: retry one at a time
            if len(ready) == 1:
                message = f"generation failed: {error.__class__.__name__}: {error}"
                return {ready[0][0].sample_id: self._row(ready[0][0], error=message)}
            rows: dict[str, dict[str, Any]] = {}
            for item in ready:
                rows.update(self._generate([item]))
            return rows
        latency = (time.perf_counter() - start) / len(ready)
        return {
            sample.sample_id: self._row(sample, generation=generation, latency_s=latency)
            for (sample, _), generation in zip(ready, generations)
        }

    def _generate_batch(self, ready: list[tuple[Sample, Visual]]) -> list[Generation]:
        adapter = self.loaded.adapter
        inputs = adapter.build_inputs(self.loaded, [s.prompt for s, _ in ready], [v for _, v in ready])
        generators = [
            torch.Generator(device=self.loaded.device).manual_seed(sample_seed(self.config.seed, s.sample_id))
            for s, _ in ready
        ]
        return self.method.generate(
            self.loaded, inputs, self.config.method, self.config.generation.max_new_tokens, generators
        )

    def _row(
        self,
        sample: Sample,
        generation: Generation | None = None,
        latency_s: float | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        row = sample.to_row()
        row.update(
            run_id=self.config.run_id,
            benchmark_version=self.benchmark_version,
            model=self.config.model.name,
            method=self.config.method.name,
            seed=self.config.seed,
            error=error,
        )
        if generation is None:
            return row
        text, pieces, offsets = token_pieces(self.loaded.tokenizer, generation.token_ids)
        row.update(
            output_text=text,
            token_ids=generation.token_ids,
            tokens=pieces,
            token_offsets=offsets,
            logprobs=generation.logprobs,
            saliency=generation.saliency,
            tau=generation.tau,
            rejections=generation.rejections,
            fallback=generation.fallback,
            total_rejections=sum(generation.rejections) if generation.rejections is not None else None,
            total_fallbacks=sum(generation.fallback) if generation.fallback is not None else None,
            candidate_ids=generation.candidate_ids,
            candidate_saliency=generation.candidate_saliency,
            n_generated=len(generation.token_ids),
            latency_s=latency_s,
        )
        return row

