"""The Ray Data stages of generation: `InputStage`, a CPU actor that reads queue pieces, decodes
each sample's image or video frames and runs its model's processor (`prepare_inputs`), and
`InferenceStage`, a UDF class that holds one model and turns sample rows into generation rows
(GENERATION_SCHEMA). Heavy set-up happens once per actor; one inference actor can serve several
runs that use the same weights (the cells of a grid).

Decoding and processing run in CPU workers beside the model actor (Ray Data's pattern for batch
inference), so the actor's time goes to the model: each sample's processed tensors travel as
safetensors bytes (`MODEL_INPUTS`), which the actor batches (`pipeline.model_inputs.collate`,
equal to the processor's own batching). Rows without that column (the stage called in-process,
as a plain loop) are decoded and processed in the actor by the same function.

A bad sample never kills the batch: an undecodable image, a processor failure or a failed
generation becomes a row with `error` set, and the rest of the batch is generated as usual.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.api import DecodingMethod, Generation, LoadedModel, ModelAdapter, Sample
from pipeline.config import ModelArgs, RunConfig
from pipeline.methods import METHODS
from pipeline.model_inputs import collate, from_bytes, sample_inputs, to_bytes, to_model
from pipeline.models import MODELS
from pipeline.models._common import actor_placement, processor_only
from pipeline.schema import to_table
from pipeline.visuals import load_visual

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

MODEL_INPUTS = "model_inputs"  # one sample's processed tensors, safetensors bytes


def processed(adapter: ModelAdapter, processor: Any, config: RunConfig, sample: Sample) -> dict[str, torch.Tensor]:
    """One sample's model inputs: its image or video frames decoded and run through the processor.

    Raises:
        ValueError: the visual does not decode (the message names the file), or the processor
            failed on this sample.
    """
    visual = load_visual(sample, config.benchmark.num_frames)
    try:
        return sample_inputs(processor, adapter, sample.prompt, visual, config.model.conversation)
    except Exception as error:  # noqa: BLE001 - any processor failure is this sample's error row
        raise ValueError(f"processing failed: {error.__class__.__name__}: {error}") from error


@functools.lru_cache(maxsize=None)
def _run_config(config_json: str) -> RunConfig:
    return RunConfig.model_validate_json(config_json)


@functools.lru_cache(maxsize=8)
def _processor(name: str, checkpoint: str, args_json: str) -> Any:
    """A model's processor, loaded once per worker process (Ray reuses a task's worker)."""
    return processor_only(MODELS.get(name)(), checkpoint, ModelArgs.model_validate_json(args_json))


def prepare_inputs(batch: pa.Table, cells: list[tuple[str, str]]) -> pa.Table:
    """Ray Data map stage: adds each row's processed model inputs (MODEL_INPUTS).

    A row whose image or video does not decode, or which its processor rejects, gets `error`
    set (and no inputs), so the actor writes it as an error row; a row that already has an
    error passes through.

    Args:
        batch: queue rows (Sample fields plus run_id).
        cells: (RunConfig JSON, benchmark reader version) of every run the rows may belong to.
    """
    configs = {config.run_id: config for config in (_run_config(text) for text, _ in cells)}
    inputs, errors = [], []
    for row in batch.to_pylist():
        sample, config = Sample.from_row(row), configs[row["run_id"]]
        data, error = None, sample.error
        if error is None:
            model = config.model
            processor = _processor(model.name, model.checkpoint, model.args.model_dump_json())
            try:
                data = to_bytes(processed(MODELS.get(model.name)(), processor, config, sample))
            except ValueError as failure:
                error = str(failure)
        inputs.append(data)
        errors.append(error)
    batch = batch.set_column(batch.schema.get_field_index("error"), "error", pa.array(errors, pa.string()))
    return batch.append_column(MODEL_INPUTS, pa.array(inputs, pa.binary()))


class InputStage:
    """Ray Data actor stage before the model: (queue, row_group) pieces -> rows with MODEL_INPUTS.

    Reads each piece's row group of the run queue (`pipeline.run.queue_path`) and prepares its
    rows (`prepare_inputs`); the processors stay loaded in the worker between pieces.
    """

    def __init__(self, cells: list[tuple[str, str]]) -> None:
        """Args: cells: (RunConfig JSON, benchmark reader version) of every run in the queue."""
        self.cells = cells

    def __call__(self, pieces: pa.Table) -> pa.Table:
        rows = [
            pq.ParquetFile(queue).read_row_group(group)
            for queue, group in zip(pieces.column("queue").to_pylist(), pieces.column("row_group").to_pylist())
        ]
        return prepare_inputs(pa.concat_tables(rows), self.cells)


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


def _append_record(path: Path, record: dict[str, Any]) -> None:
    """Appends `record`, stamped with this actor's host and pid, as one JSON line: one short
    append, atomic enough on local and network file systems alike."""
    with path.open("a") as handle:
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), **record}) + "\n")


def _log_load(path: Path, config: RunConfig, seconds: float) -> None:
    _append_record(path, {"model": config.model.name, "checkpoint": config.model.checkpoint,
                          "dtype": config.model.dtype, "seconds": round(seconds, 3)})


@dataclass(frozen=True)
class ActorUsage:
    """How a pool's inference actors spent their time once their model was loaded, from their
    trace (see InferenceStage). Per actor, the span runs from its model being ready to the end
    of its last batch, so neither a slow model load nor the pipeline's wind-down counts; times
    are summed over the actors."""

    actors: int
    busy_s: float  # inside batches
    span_s: float
    before_first_s: float  # from the model being ready to the first batch

    @property
    def busy_fraction(self) -> float:
        return self.busy_s / self.span_s if self.span_s > 0 else 1.0

    @property
    def between_batches_s(self) -> float:
        """Waiting for the next batch once work flowed: the inputs (or the writes) fell behind."""
        return max(self.span_s - self.busy_s - self.before_first_s, 0.0)

    @classmethod
    def from_trace(cls, path: Path, offset: int = 0) -> ActorUsage | None:
        """The usage recorded in `path` from byte `offset` on (a trace may hold earlier
        pipelines); None when no actor finished a batch there. A line cut short by a killed
        actor, or any other line that is not a trace record, is skipped: the trace is a
        measurement, not a result."""
        actors: dict[tuple[str, int], dict[str, Any]] = {}
        with path.open("rb") as handle:
            handle.seek(offset)
            for line in handle:
                try:
                    record = json.loads(line)
                    actor = actors.setdefault((record["host"], record["pid"]), {"batches": []})
                    if "ready" in record:
                        actor["ready"] = float(record["ready"])
                    else:
                        actor["batches"].append((float(record["start"]), float(record["end"])))
                except (ValueError, TypeError, KeyError):
                    continue
        timed = [a for a in actors.values() if "ready" in a and a["batches"]]
        if not timed:
            return None
        return cls(
            actors=len(timed),
            busy_s=sum(end - start for a in timed for start, end in a["batches"]),
            span_s=sum(max(end for _, end in a["batches"]) - a["ready"] for a in timed),
            before_first_s=sum(min(start for start, _ in a["batches"]) - a["ready"] for a in timed),
        )


@dataclass
class Cell:
    """One run served by an inference actor: its config, reader version and decoding method."""

    config: RunConfig
    benchmark_version: str
    method: DecodingMethod


def model_key(config: RunConfig) -> tuple[str, str, str, str]:
    """What decides the loaded model: runs with the same key can share one model actor."""
    model = config.model
    return (model.name, model.checkpoint, model.dtype, model.args.model_dump_json())


class InferenceStage:
    """Ray Data UDF holding one model that serves one run or several (the cells of a grid).

    `ds.map_batches(InferenceStage, fn_constructor_kwargs={"cells": [(config_json, version)]})`.
    Rows carry their run's `run_id`; a batch is split by run and each part is decoded with its
    own run's method, parameters, seed and limits. That is safe because a method's `prepare`
    only installs the halleval attention (exactly SDPA while no LocoRE/saliency plan is active)
    and all per-run settings reach the decode loop as arguments, never as model state.

    Args:
        cells: (RunConfig JSON, benchmark reader version) of every run the actor serves; all
            must share the model key (name, checkpoint, dtype, args). Plain data, so Ray can ship it.
        load_log: a JSONL file to which each actor appends one line per model load (model,
            checkpoint, dtype, seconds, host, pid), so a grid can show what loading cost and
            tests can count loads.
        trace: a JSONL file to which each actor appends {host, pid, ready} once loaded and
            {host, pid, start, end, rows} per batch (wall-clock seconds of the actor's host),
            from which `ActorUsage` computes the pool's busy fraction.

    Raises:
        ValueError: the cells need different weights.
    """

    def __init__(self, cells: list[tuple[str, str]], load_log: str | None = None, trace: str | None = None) -> None:
        configs = [(RunConfig.model_validate_json(text), version) for text, version in cells]
        keys = {model_key(config) for config, _ in configs}
        if len(keys) != 1:
            raise ValueError(f"one inference actor serves one model, got {sorted(keys)}")
        first = configs[0][0]
        device, args = actor_placement(first.resources.gpus_per_actor, first.model.args)
        start = time.perf_counter()
        adapter = MODELS.get(first.model.name)()
        self.loaded: LoadedModel = adapter.load(first.model.checkpoint, _DTYPES[first.model.dtype], device, args)
        if load_log:
            _log_load(Path(load_log), first, time.perf_counter() - start)
        self.cells: dict[str, Cell] = {}
        for config, version in configs:
            method = METHODS.get(config.method.name)()
            method.prepare(self.loaded, config.method)
            self.cells[config.run_id] = Cell(config, version, method)
        self._trace = Path(trace) if trace else None
        self._log_trace({"ready": time.time()})

    def _log_trace(self, record: dict[str, Any]) -> None:
        if self._trace is None:
            return
        try:
            _append_record(self._trace, record)
        except OSError:  # a measurement never fails a batch: this actor stops timing itself
            self._trace = None

    def __call__(self, batch: pa.Table) -> pa.Table:
        start = time.time()
        table_rows = batch.to_pylist()
        prepared = MODEL_INPUTS in batch.column_names
        samples = [Sample.from_row(row) for row in table_rows]
        run_ids = batch.column("run_id").to_pylist()
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        ready: dict[str, list[tuple[Sample, dict[str, torch.Tensor]]]] = {}
        for run_id, sample, table_row in zip(run_ids, samples, table_rows):
            cell = self.cells[run_id]
            if sample.error:
                rows[run_id, sample.sample_id] = self._row(cell, sample, error=sample.error)
                continue
            try:
                inputs = (from_bytes(table_row[MODEL_INPUTS]) if prepared
                          else processed(self.loaded.adapter, self.loaded.processor, cell.config, sample))
            except ValueError as error:
                rows[run_id, sample.sample_id] = self._row(cell, sample, error=str(error))
                continue
            ready.setdefault(run_id, []).append((sample, inputs))
        for run_id, items in ready.items():
            cell = self.cells[run_id]
            rows.update(((run_id, sid), row) for sid, row in self._generate(cell, items).items())
        table = to_table([rows[run_id, sample.sample_id] for run_id, sample in zip(run_ids, samples)])
        self._log_trace({"start": start, "end": time.time(), "rows": batch.num_rows})
        return table

    def _generate(self, cell: Cell, ready: list[tuple[Sample, dict[str, torch.Tensor]]]) -> dict[str, dict[str, Any]]:
        if not ready:
            return {}
        start = time.perf_counter()
        try:
            generations = self._generate_batch(cell, ready)
        except Exception as error:  # noqa: BLE001 - isolate the failing sample: retry one at a time
            if len(ready) == 1:
                message = f"generation failed: {error.__class__.__name__}: {error}"
                return {ready[0][0].sample_id: self._row(cell, ready[0][0], error=message)}
            rows: dict[str, dict[str, Any]] = {}
            for item in ready:
                rows.update(self._generate(cell, [item]))
            return rows
        latency = (time.perf_counter() - start) / len(ready)
        return {
            sample.sample_id: self._row(cell, sample, generation=generation, latency_s=latency)
            for (sample, _), generation in zip(ready, generations)
        }

    def _generate_batch(self, cell: Cell, ready: list[tuple[Sample, dict[str, torch.Tensor]]]) -> list[Generation]:
        config = cell.config
        inputs = to_model(collate([inputs for _, inputs in ready], self.loaded.tokenizer.pad_token_id), self.loaded)
        generators = [
            torch.Generator(device=self.loaded.device).manual_seed(sample_seed(config.seed, s.sample_id))
            for s, _ in ready
        ]
        return cell.method.generate(self.loaded, inputs, config.method, config.generation.max_new_tokens, generators)

    def _row(
        self,
        cell: Cell,
        sample: Sample,
        generation: Generation | None = None,
        latency_s: float | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        config = cell.config
        row = sample.to_row()
        row.update(
            run_id=config.run_id,
            benchmark_version=cell.benchmark_version,
            model=config.model.name,
            method=config.method.name,
            seed=config.seed,
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
            method_fields=json.dumps(generation.method_fields) if generation.method_fields is not None else None,
            n_generated=len(generation.token_ids),
            latency_s=latency_s,
        )
        return row

