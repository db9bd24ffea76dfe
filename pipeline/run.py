"""Generation for one run or many: benchmark rows -> actor pool -> committed Parquet files.

Resumable by construction: each written file is complete or absent (write to a dot-file, then
rename), and a re-run generates only the samples that no committed file holds yet.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from pipeline.inference import InferenceStage, model_key
from pipeline.schema import GENERATION_SCHEMA, GENERATIONS_DIR, generation_files, read_generations


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


def load_samples(config: RunConfig) -> tuple[list[Sample], str]:
    """All samples of the run's benchmark, with unique ids, and the reader's version."""
    benchmark = BENCHMARKS.get(config.benchmark.name)()
    samples = list(benchmark.samples(config.benchmark, config.seed))
    seen: set[str] = set()
    for sample in samples:
        if sample.sample_id in seen:
            raise BenchmarkError(f"{config.benchmark.root}: sample id {sample.sample_id!r} appears twice")
        seen.add(sample.sample_id)
    if not samples:
        raise BenchmarkError(f"{config.benchmark.root}: the {config.benchmark.name} reader found no samples")
    return samples, benchmark.version


def committed_sample_ids(run_dir: Path) -> set[str]:
    if not generation_files(run_dir):
        return set()
    return set(read_generations(run_dir, columns=["sample_id"]).column("sample_id").to_pylist())


def generate(config: RunConfig, log: Callable[[str], None] = print) -> GenerationSummary:
    """Generates every sample of the run not yet committed; Ray must be initialised."""
    return generate_many([config], log=log)[0]


def generate_many(
    configs: Sequence[RunConfig], log: Callable[[str], None] = print, load_log: Path | None = None
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

    Returns:
        One summary per config, in order; `seconds` is the wall time of the run's model group.
    """
    groups: dict[tuple[str, str, str], list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(model_key(config), []).append(index)
    summaries: list[GenerationSummary | None] = [None] * len(configs)
    for indices in groups.values():
        start = time.perf_counter()
        rows, cells, folders, counts = [], [], {}, {}
        for index in indices:
            config = configs[index]
            folder = config.run_dir / GENERATIONS_DIR
            folder.mkdir(parents=True, exist_ok=True)
            samples, version = load_samples(config)
            done = committed_sample_ids(config.run_dir)
            todo = [s for s in samples if s.sample_id not in done]
            log(f"{config.run_id}: {len(samples)} samples, {len(samples) - len(todo)} already generated, {len(todo)} to go")
            counts[index] = (len(samples), len(todo))
            if todo:
                rows += [{**s.to_row(), "run_id": config.run_id} for s in todo]
                cells.append((config.model_dump_json(), version))
                folders[config.run_id] = folder
        if rows:
            _run_pipeline([configs[i] for i in indices], rows, cells, folders, load_log)
        seconds = time.perf_counter() - start
        for index in indices:
            total, todo = counts[index]
            summaries[index] = GenerationSummary(
                run_dir=configs[index].run_dir, n_samples=total, n_generated=todo,
                n_resumed=total - todo, seconds=seconds,
            )
    return summaries


def _run_pipeline(
    configs: list[RunConfig], rows: list[dict], cells: list[tuple[str, str]],
    folders: dict[str, Path], load_log: Path | None,
) -> None:
    """One model group's dataset -> actor pool -> sink. Rows stay in run order, so most batches
    hold one run; the smallest batch size and the largest pool asked for by the runs are used
    (neither changes what is generated)."""
    resources = configs[0].resources
    dataset = ray.data.from_items(rows)
    dataset = dataset.map_batches(
        InferenceStage,
        fn_constructor_kwargs={"cells": cells, "load_log": str(load_log) if load_log else None},
        batch_size=min(c.generation.batch_size for c in configs),
        compute=ActorPoolStrategy(size=max(c.resources.num_actors for c in configs)),
        num_gpus=resources.gpus_per_actor,
        num_cpus=resources.cpus_per_actor,
        batch_format="pyarrow",
    )
    dataset.write_datasink(CommittedParquetSink(folders))
