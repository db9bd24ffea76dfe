"""Generation for one run: benchmark rows -> actor pool -> committed Parquet files.

Resumable by construction: each written file is complete or absent (write to a dot-file, then
rename), and a re-run generates only the samples that no committed file holds yet.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.data import ActorPoolStrategy, Datasink
from ray.data.block import BlockAccessor

from pipeline.api import BenchmarkError, Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.config import RunConfig
from pipeline.inference import InferenceStage
from pipeline.schema import GENERATION_SCHEMA, GENERATIONS_DIR, generation_files, read_generations


class CommittedParquetSink(Datasink):
    """Writes each write task's rows to one Parquet file that appears atomically (rename).

    The file is named after the sample ids it holds, so a write task that Ray retries (its
    worker died after the rename) replaces its own file instead of committing a duplicate.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, blocks: Iterable, ctx) -> int:
        tables = [BlockAccessor.for_block(block).to_arrow() for block in blocks]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return 0
        table = pa.concat_tables(tables).cast(GENERATION_SCHEMA)
        ids = "\n".join(sorted(table.column("sample_id").to_pylist()))
        name = f"part-{hashlib.sha256(ids.encode()).hexdigest()[:24]}.parquet"
        # A unique temporary name: two attempts of one task may overlap and must not share it.
        partial = self.folder / f".{name}.{uuid.uuid4().hex}.partial"
        pq.write_table(table, partial)
        os.replace(partial, self.folder / name)
        return table.num_rows


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
    start = time.perf_counter()
    run_dir = config.run_dir
    folder = run_dir / GENERATIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    samples, version = load_samples(config)
    done = committed_sample_ids(run_dir)
    todo = [s for s in samples if s.sample_id not in done]
    log(f"{config.run_id}: {len(samples)} samples, {len(samples) - len(todo)} already generated, {len(todo)} to go")
    if todo:
        resources = config.resources
        dataset = ray.data.from_items([s.to_row() for s in todo])
        dataset = dataset.map_batches(
            InferenceStage,
            fn_constructor_kwargs={"config_json": config.model_dump_json(), "benchmark_version": version},
            batch_size=config.generation.batch_size,
            compute=ActorPoolStrategy(size=resources.num_actors),
            num_gpus=resources.gpus_per_actor,
            num_cpus=resources.cpus_per_actor,
            batch_format="pyarrow",
        )
        dataset.write_datasink(CommittedParquetSink(folder))
    return GenerationSummary(
        run_dir=run_dir,
        n_samples=len(samples),
        n_generated=len(todo),
        n_resumed=len(samples) - len(todo),
        seconds=time.perf_counter() - start,
    )
