"""Generation for one run or many: benchmark rows -> actor pool -> committed Parquet files.

Resumable by construction: each written file is complete or absent (write to a dot-file, then
rename), and a re-run generates only the samples that no committed file holds yet.

The driver never holds a run's samples: each run's samples stream from its reader into an
on-disk queue, `<run_dir>/.queue/todo.parquet`, in row groups of a few batches each. The
pipeline's input is the list of (queue file, row group) pieces; a Ray task reads each piece,
so the rows go from disk to the workers and never through the driver. The queue is rebuilt on
every invocation and removed when the pipeline ends. The driver's private memory stays flat
with the number of samples (docs/benchmarks.md, "Driver memory"); what it keeps are the sets
of sample ids for the duplicate check and resume.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.data import ActorPoolStrategy, Datasink
from ray.data.block import BlockAccessor

from pipeline.api import BenchmarkError, Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.config import RunConfig
from pipeline.inference import InferenceStage, decode_visuals, model_key
from pipeline.schema import (
    GENERATION_SCHEMA,
    GENERATIONS_DIR,
    generation_files,
    read_generations,
)


class CommittedParquetSink(Datasink):
    """Writes each write task's rows to one Parquet file that appears atomically (rename).

    The file is named after the sample ids it holds, so a write task that Ray retries (its
    worker died after the rename) replaces its own file instead of committing a duplicate.
    """

    def __init__(self, folders: Mapping[str, Path]) -> None:
        """Args: folders: run_id -> that run's generations/ folder (a grid writes many runs)."""
        self.folders = dict(folders)

    def write(self, blocks: Iterable, ctx) -> int:
        tables = [BlockAccessor.for_block(block).to_arrow() for block in blocks]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return 0
        table = pa.concat_tables(tables).cast(GENERATION_SCHEMA)
        run_ids = table.column("run_id")
        for run_id in pc.unique(run_ids).to_pylist():
            self._commit(table.filter(pc.equal(run_ids, run_id)), self.folders[run_id])
        return table.num_rows

    @staticmethod
    def _commit(table: pa.Table, folder: Path) -> None:
        ids = "\n".join(sorted(table.column("sample_id").to_pylist()))
        name = f"part-{hashlib.sha256(ids.encode()).hexdigest()[:24]}.parquet"
        # A unique temporary name: two attempts of one task may overlap and must not share it.
        partial = folder / f".{name}.{uuid.uuid4().hex}.partial"
        pq.write_table(table, partial)
        os.replace(partial, folder / name)


@dataclass
class GenerationSummary:
    run_dir: Path
    n_samples: int
    n_generated: int  # by this invocation
    n_resumed: int  # found already committed
    seconds: float


QUEUE_DIR = ".queue"  # dot-prefixed: never taken for output (generation_files, globs, syncs)
BATCHES_PER_PIECE = 4  # a queue row group (one unit of work) holds this many batches
# Every Sample field is a string (metadata as JSON, see Sample.to_row), plus the row's run id.
QUEUE_SCHEMA = pa.schema([(name, pa.string()) for name in Sample.__dataclass_fields__] + [("run_id", pa.string())])


def iter_samples(config: RunConfig) -> tuple[Iterator[Sample], str]:
    """The run's samples as they come from the reader, and the reader's version.

    The iterator raises BenchmarkError on a repeated sample id (when it reaches it) and, at its
    end, when the reader yielded nothing; the reader's own errors surface on the first `next`.
    """
    benchmark = BENCHMARKS.get(config.benchmark.name)()
    return _checked(benchmark.samples(config.benchmark, config.seed), config), benchmark.version


def _checked(samples: Iterable[Sample], config: RunConfig) -> Iterator[Sample]:
    seen: set[str] = set()
    for sample in samples:
        if sample.sample_id in seen:
            raise BenchmarkError(f"{config.benchmark.root}: sample id {sample.sample_id!r} appears twice")
        seen.add(sample.sample_id)
        yield sample
    if not seen:
        raise BenchmarkError(f"{config.benchmark.root}: the {config.benchmark.name} reader found no samples")


def load_samples(config: RunConfig) -> tuple[list[Sample], str]:
    """All samples of the run's benchmark, with unique ids, and the reader's version."""
    samples, version = iter_samples(config)
    return list(samples), version


def queue_path(run_dir: Path) -> Path:
    """The run's queue of samples still to generate (exists only while generate_many runs)."""
    return run_dir / QUEUE_DIR / "todo.parquet"


def write_queue(
    samples: Iterable[Sample], done: set[str], run_id: str, path: Path, rows_per_group: int
) -> tuple[int, int]:
    """Writes the samples whose ids are not in `done` to a Parquet queue, one row group of
    `rows_per_group` rows at a time (all the driver holds at once).

    A stale queue (left by a killed run) is replaced, never appended to. No file is written
    when nothing is left to generate.

    Returns:
        (samples seen, samples queued), the queued ones in reader order.
    """
    shutil.rmtree(path.parent, ignore_errors=True)
    total, queued, chunk = 0, 0, []
    writer: pq.ParquetWriter | None = None
    try:
        for sample in samples:
            total += 1
            if sample.sample_id in done:
                continue
            chunk.append({**sample.to_row(), "run_id": run_id})
            if len(chunk) == rows_per_group:
                writer = _write_chunk(writer, chunk, path)
                queued += len(chunk)
                chunk = []
        if chunk:
            writer = _write_chunk(writer, chunk, path)
            queued += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    return total, queued


def _write_chunk(writer: pq.ParquetWriter | None, rows: list[dict], path: Path) -> pq.ParquetWriter:
    if writer is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = pq.ParquetWriter(path, QUEUE_SCHEMA)
    writer.write_table(pa.Table.from_pylist(rows, schema=QUEUE_SCHEMA))
    return writer


def committed_sample_ids(run_dir: Path) -> set[str]:
    if not generation_files(run_dir):
        return set()
    return set(read_generations(run_dir, columns=["sample_id"]).column("sample_id").to_pylist())


def generate(config: RunConfig, log: Callable[[str], None] = print) -> GenerationSummary:
    """Generates every sample of the run not yet committed; Ray must be initialised."""
    return generate_many([config], log=log)[0]


def generate_many(
    configs: Sequence[RunConfig], log: Callable[[str], None] = print, load_log: Path | None = None,
    trace: Path | None = None,
) -> list[GenerationSummary]:
    """Generates the missing samples of several runs, loading each model once for all its runs.

    Runs that share the weights (model name, checkpoint, dtype) form one Ray Data pipeline: one
    dataset whose rows carry their run's id, one actor pool that loads the model once and
    decodes each row with its own run's method and parameters, and one sink that commits each
    run's rows to that run's folder. Model groups run one after another, so a cluster needs room
    for one group's actors at a time. Ray must be initialised.

    Args:
        configs: the runs; each resumes on its own (committed samples are skipped).
        log: progress lines.
        load_log: JSONL file for the actors' model-load records (see InferenceStage).
        trace: JSONL file for the actors' per-batch timings (see InferenceStage).

    Returns:
        One summary per config, in order; `seconds` is the wall time of the run's model group.
    """
    groups: dict[tuple[str, str, str], list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(model_key(config), []).append(index)
    summaries: list[GenerationSummary | None] = [None] * len(configs)
    for indices in groups.values():
        start = time.perf_counter()
        queues, cells, folders, counts = [], [], {}, {}
        rows_per_group = BATCHES_PER_PIECE * _batch_size([configs[i] for i in indices])
        try:
            for index in indices:
                config = configs[index]
                folder = config.run_dir / GENERATIONS_DIR
                folder.mkdir(parents=True, exist_ok=True)
                samples, version = iter_samples(config)
                done = committed_sample_ids(config.run_dir)
                queue = queue_path(config.run_dir)
                total, todo = write_queue(samples, done, config.run_id, queue, rows_per_group)
                log(f"{config.run_id}: {total} samples, {total - todo} already generated, {todo} to go")
                counts[index] = (total, todo)
                if todo:
                    queues.append(queue)
                    cells.append((config.model_dump_json(), version))
                    folders[config.run_id] = folder
            if queues:
                _run_pipeline([configs[i] for i in indices], queues, cells, folders, load_log, trace)
        finally:
            for index in indices:
                shutil.rmtree(configs[index].run_dir / QUEUE_DIR, ignore_errors=True)
        seconds = time.perf_counter() - start
        for index in indices:
            total, todo = counts[index]
            summaries[index] = GenerationSummary(
                run_dir=configs[index].run_dir, n_samples=total, n_generated=todo,
                n_resumed=total - todo, seconds=seconds,
            )
    return summaries


def _batch_size(configs: Sequence[RunConfig]) -> int:
    """The batch size of a model group: the smallest its runs ask for (it changes no output)."""
    return min(c.generation.batch_size for c in configs)


def _read_pieces(pieces: pa.Table) -> pa.Table:
    """Reads the queue row groups that a batch of (queue, row_group) pieces names."""
    tables = [
        pq.ParquetFile(queue).read_row_group(group)
        for queue, group in zip(pieces.column("queue").to_pylist(), pieces.column("row_group").to_pylist())
    ]
    return pa.concat_tables(tables)


def _run_pipeline(
    configs: list[RunConfig], queues: list[Path], cells: list[tuple[str, str]],
    folders: dict[str, Path], load_log: Path | None, trace: Path | None = None,
) -> None:
    """One model group's queue pieces -> read + decode tasks -> actor pool -> sink.

    Each queue row group (a few batches) is one block, so every actor of the pool gets work and
    the driver handles only the list of pieces. Reading a piece and decoding its images or
    videos is one CPU task (Ray Data fuses the two map stages), which runs while the actors
    generate, so the actors only run the processor and the model. Rows stay in run order, so
    most batches hold one run; the largest pool asked for by the runs is used (it changes no
    output).
    """
    resources = configs[0].resources
    pieces = [
        {"queue": str(queue), "row_group": group}
        for queue in queues for group in range(pq.ParquetFile(queue).num_row_groups)
    ]
    dataset = ray.data.from_items(pieces, override_num_blocks=len(pieces))
    dataset = dataset.map_batches(_read_pieces, batch_size=1, batch_format="pyarrow", num_cpus=0.25)
    num_frames = {c.run_id: c.benchmark.num_frames for c in configs}
    dataset = dataset.map_batches(decode_visuals, fn_kwargs={"num_frames": num_frames}, batch_size=None,
                                  batch_format="pyarrow", num_cpus=0.25)
    dataset = dataset.map_batches(
        InferenceStage,
        fn_constructor_kwargs={"cells": cells, "load_log": str(load_log) if load_log else None,
                               "trace": str(trace) if trace else None},
        batch_size=_batch_size(configs),
        compute=ActorPoolStrategy(size=max(c.resources.num_actors for c in configs)),
        num_gpus=resources.gpus_per_actor,
        num_cpus=resources.cpus_per_actor,
        batch_format="pyarrow",
    )
    dataset.write_datasink(CommittedParquetSink(folders))
