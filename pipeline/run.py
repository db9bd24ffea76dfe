"""Generation for one run or many: benchmark rows -> actor pool -> committed Parquet files.

Resumable by construction: each written file is complete or absent (write to a dot-file, then
rename), and a re-run generates only the samples that no committed file holds yet.

The driver never holds a run's samples: each run's samples stream from its reader into an
on-disk queue, `<run_dir>/.queue/todo.parquet`, in row groups of a few batches each. The
pipeline's input is the list of (queue file, row group) pieces; an input worker
(pipeline.inference.InputStage) reads each piece, so the rows go from disk to the workers and
never through the driver. The queue is rebuilt on
every invocation and removed when the pipeline ends. The driver's private memory stays flat
with the number of samples (docs/benchmarks.md, "Driver memory"); what it keeps are the sets
of sample ids for the duplicate check and resume, and the per-sample benchmark fingerprint
(three short strings per sample, pipeline.fingerprint).

Each start, under the run folder's lease (pipeline.lease), first reconciles the committed files
(foreign files quarantined, duplicate rows dropped), then writes the queue: samples without a
row, error rows to retry, and samples whose fingerprint changed (only with accept_changes once
they have a good row). A run whose good rows came from another halleval, torch or transformers
version refuses to add to them unless accept_changes (pipeline.producer).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.data import ActorPoolStrategy

from pipeline.api import BenchmarkError, Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.config import RunConfig
from pipeline.fingerprint import (
    BenchmarkChangedError,
    FingerprintCheck,
    read_fingerprint,
    write_fingerprint,
)
from pipeline.inference import ActorUsage, InferenceStage, InputStage, model_key
from pipeline.lease import run_lease
from pipeline.producer import check_producer
from pipeline.resources import INPUT_WORKER_CPUS, WRITE_CPUS, check_resources, pool_sizes
from pipeline.sink import CommittedParquetSink
from pipeline.schema import (
    GENERATION_SCHEMA,
    GENERATIONS_DIR,
    generation_files,
)


@dataclass
class GenerationSummary:
    run_dir: Path
    n_samples: int
    n_generated: int  # by this invocation
    n_resumed: int  # found already committed
    seconds: float
    fingerprint: str | None = None  # combined sha256 of the benchmark's samples (pipeline.fingerprint)
    actor_busy: float | None = None  # the model group's inference actors' busy fraction (ActorUsage)


QUEUE_DIR = ".queue"  # dot-prefixed: never taken for output (generation_files, globs, syncs)
QUARANTINE_DIR = "quarantine"  # committed files that are not this run's generations
BATCHES_PER_PIECE = 4  # a queue row group (one unit of work) holds this many batches
TRACE_FILE = "actor_trace.jsonl"  # in the queue folder: the inference actors' timings (ActorUsage)
# Above this share of the actors' time spent waiting between batches, the log suggests more
# input workers: the model outran its inputs.
WAITING_HINT = 0.2
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
    samples: Iterable[Sample], done: set[str], run_id: str, path: Path, rows_per_group: int,
    fingerprint: FingerprintCheck | None = None, retry: set[str] = frozenset(),
    requeued: set[str] | None = None,
) -> tuple[int, int]:
    """Writes the samples whose ids are not in `done` to a Parquet queue, one row group of
    `rows_per_group` rows at a time (all the driver holds at once).

    A stale queue (left by a killed run) is replaced, never appended to. No file is written
    when nothing is left to generate.

    Args:
        fingerprint: when given, sees every sample; one that differs from the recorded
            fingerprint is queued even if `done` holds it.
        retry: ids in `done` whose row is an error row to generate again; a sample whose error
            comes from the reader itself (the same benchmark gives the same error) is not.
        requeued: collects the ids queued although `done` holds them (their rows must go).

    Returns:
        (samples seen, samples queued), the queued ones in reader order.
    """
    shutil.rmtree(path.parent, ignore_errors=True)
    total, queued, chunk = 0, 0, []
    writer: pq.ParquetWriter | None = None
    try:
        for sample in samples:
            total += 1
            changed = fingerprint is not None and fingerprint.see(sample)
            if sample.sample_id in done:
                if not changed and not (sample.sample_id in retry and sample.error is None):
                    continue
                if requeued is not None:
                    requeued.add(sample.sample_id)
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


def committed_sample_ids(run_dir: Path, errors_only: bool = False) -> set[str]:
    """Sample ids of the committed rows (only of the error rows with `errors_only`)."""
    ids: set[str] = set()
    for path in generation_files(run_dir):
        table = pq.read_table(path, columns=["sample_id", "error"])
        if errors_only:
            table = table.filter(pc.is_valid(table.column("error")))
        ids.update(table.column("sample_id").to_pylist())
    return ids


_IDENTITY_COLUMNS = ("run_id", "sample_id", "error")  # what resume, reconcile and scoring key on


def _foreign(path: Path, run_id: str) -> str | None:
    """Why a committed file is not one of this run's generations, or None when it is.

    A file that lacks a column added to the schema later is still this run's (it is not moved
    on a schema change); one without the identity columns, or with another type for a shared
    column, is not.
    """
    try:
        schema = pq.read_schema(path)
        if not all(schema.field(f.name).type == f.type for f in GENERATION_SCHEMA if f.name in schema.names):
            return "its columns have other types than the generation schema"
        missing = [name for name in _IDENTITY_COLUMNS if name not in schema.names]
        if missing:
            return f"it lacks the column(s) {', '.join(missing)} of the generation schema"
        run_ids = pc.unique(pq.read_table(path, columns=["run_id"]).column("run_id")).to_pylist()
    except (OSError, ValueError) as error:  # pyarrow raises ArrowInvalid (a ValueError) on non-Parquet
        size = path.stat().st_size if path.exists() else 0
        return f"not a readable Parquet file ({size} bytes: {' '.join(str(error).split())[:120]})"
    strangers = [r for r in run_ids if r != run_id]
    if strangers:
        return f"it holds rows of another run ({strangers[0]})"
    return None


def quarantine_foreign_files(run_dir: Path, run_id: str, log: Callable[[str], None]) -> list[Path]:
    """Moves committed files that are not this run's generations to `<run_dir>/quarantine/`.

    A zero-byte or garbled file, a file of another schema and a file of another run would
    otherwise break every later read; each one moved is named in one log line.
    """
    moved = []
    for path in generation_files(run_dir):
        reason = _foreign(path, run_id)
        if reason is None:
            continue
        target = Path(run_dir) / QUARANTINE_DIR / path.name
        target.parent.mkdir(exist_ok=True)
        if target.exists():  # keep what an earlier start set aside under the same name
            target = target.with_name(f"{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}")
        os.replace(path, target)
        log(f"{run_id}: {GENERATIONS_DIR}/{path.name}: {reason}; moved to {QUARANTINE_DIR}/{target.name}")
        moved.append(target)
    return moved


def drop_rows(run_dir: Path, drop: Callable[[Path, pa.Table], pa.Array | None]) -> int:
    """Removes rows from committed files; each file is rewritten in place atomically.

    Args:
        drop: (file, its sample_id and error columns) -> boolean mask of rows to drop, or None.

    Returns:
        The number of rows dropped.
    """
    dropped = 0
    for path in generation_files(run_dir):
        mask = drop(path, pq.read_table(path, columns=["sample_id", "error"]))
        if mask is None or not pc.any(mask).as_py():
            continue
        table = pq.read_table(path).filter(pc.invert(mask))
        dropped += pc.sum(mask.cast(pa.int64())).as_py()
        if table.num_rows:
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
            pq.write_table(table, partial)
            os.replace(partial, path)
        else:
            path.unlink()
    return dropped


def reconcile(run_dir: Path, run_id: str, log: Callable[[str], None]) -> None:
    """Brings a run's committed files to one row per sample before a (re)start, under its lease.

    Foreign files go to quarantine; a sample committed more than once (two drivers before runs
    had leases, or a lease broken by a silent owner) keeps its first row in file order, the one
    `read_generations` serves.
    """
    quarantine_foreign_files(run_dir, run_id, log)
    seen: set[str] = set()

    def duplicates(path: Path, table: pa.Table) -> pa.Array:
        flags = []
        for sample_id in table.column("sample_id").to_pylist():
            flags.append(sample_id in seen)
            seen.add(sample_id)
        return pa.array(flags, pa.bool_())

    if dropped := drop_rows(run_dir, duplicates):
        log(f"{run_id}: removed {dropped} duplicate row(s) of samples committed twice")


def _retire(run_dir: Path, sample_ids: set[str]) -> None:
    if sample_ids:
        drop_rows(run_dir, lambda _, table: pc.is_in(table.column("sample_id"), pa.array(sorted(sample_ids), pa.string())))


ProgressHook = Callable[[dict[str, int], dict[str, Path]], AbstractContextManager]
"""Called with (run id -> samples to generate, run id -> generations folder) around each model
group's pipeline; the context it returns is open while the pipeline runs (jobs.console)."""


def _no_progress(todo: dict[str, int], folders: dict[str, Path]) -> AbstractContextManager:
    return nullcontext()


def generate(
    config: RunConfig, log: Callable[[str], None] = print, retry_errors: bool = True, accept_changes: bool = False,
    progress: ProgressHook = _no_progress,
) -> GenerationSummary:
    """Generates every sample of the run not yet committed; Ray must be initialised."""
    return generate_many([config], log=log, retry_errors=retry_errors, accept_changes=accept_changes,
                         progress=progress)[0]


def generate_many(
    configs: Sequence[RunConfig], log: Callable[[str], None] = print, load_log: Path | None = None,
    retry_errors: bool = True, accept_changes: bool = False,
    trace: Path | None = None, progress: ProgressHook = _no_progress,
) -> list[GenerationSummary]:
    """Generates the missing samples of several runs, loading each model once for all its runs.

    Runs that share the weights (model name, checkpoint, dtype) form one Ray Data pipeline: one
    dataset whose rows carry their run's id, one actor pool that loads the model once and
    decodes each row with its own run's method and parameters, and one sink that commits each
    run's rows to that run's folder. Model groups run one after another, so a cluster needs room
    for one group's actors at a time. Ray must be initialised.

    Every run folder is leased for the whole call (pipeline.lease): a second driver of the same
    run refuses instead of sharing its queue and committing samples twice.

    Args:
        configs: the runs; each resumes on its own (committed samples are skipped).
        log: progress lines.
        load_log: JSONL file for the actors' model-load records (see InferenceStage).
        trace: JSONL file for the actors' per-batch timings (see InferenceStage); by default
            a file in the queue folder, from which each model group logs its actors' busy
            fraction (`ActorUsage`).
        progress: reports progress while a model group's pipeline runs (see ProgressHook).
        retry_errors: generate the samples whose committed row is an error row again.
        accept_changes: when a run's benchmark differs from its recorded fingerprint, regenerate
            the changed and added samples and drop the removed ones' rows; when its rows came
            from another version (pipeline.producer), keep them (else: refuse).

    Raises:
        RunLockedError: another live driver owns one of the run folders.
        BenchmarkChangedError: a run's benchmark changed and `accept_changes` is off.
        ProducerChangedError: a run's rows came from another halleval, torch or transformers
            version and `accept_changes` is off.
        ResourcesError: the cluster can never hold the actors and the input workers.

    Returns:
        One summary per config, in order; `seconds` is the wall time of the run's model group.
    """
    groups: dict[tuple[str, str, str], list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(model_key(config), []).append(index)
    summaries: list[GenerationSummary | None] = [None] * len(configs)
    with run_lease([config.run_dir for config in configs], log=log):
        for indices in groups.values():
            group = [configs[i] for i in indices]
            start = time.perf_counter()
            queues, cells, folders, counts = [], [], {}, {}
            usage = None
            rows_per_group = BATCHES_PER_PIECE * _batch_size(group)
            try:
                for index in indices:
                    config = configs[index]
                    total, todo, digest = _prepare(config, rows_per_group, retry_errors, accept_changes, log)
                    counts[index] = (total, todo, digest)
                    if todo:
                        queues.append(queue_path(config.run_dir))
                        cells.append((config.model_dump_json(), BENCHMARKS.get(config.benchmark.name)().version))
                        folders[config.run_id] = config.run_dir / GENERATIONS_DIR
                if queues:
                    check_resources(group, log=log)
                    todo = {configs[i].run_id: counts[i][1] for i in indices if counts[i][1]}
                    group_trace = trace or queues[0].parent / TRACE_FILE
                    offset = group_trace.stat().st_size if group_trace.exists() else 0
                    with progress(todo, folders):
                        _run_pipeline(group, queues, cells, folders, load_log, group_trace)
                    if group_trace.exists() and (usage := ActorUsage.from_trace(group_trace, offset)):
                        log(_usage_line(group, usage))
            finally:
                for index in indices:
                    shutil.rmtree(configs[index].run_dir / QUEUE_DIR, ignore_errors=True)
            seconds = time.perf_counter() - start
            for index in indices:
                total, todo, digest = counts[index]
                summaries[index] = GenerationSummary(
                    run_dir=configs[index].run_dir, n_samples=total, n_generated=todo,
                    n_resumed=total - todo, seconds=seconds, fingerprint=digest,
                    actor_busy=usage.busy_fraction if usage and todo else None,
                )
    return summaries


def _usage_line(configs: Sequence[RunConfig], usage: ActorUsage) -> str:
    """The log line of a model group's actor usage, with a hint when inputs fell behind."""
    line = (
        f"{configs[0].model.name}: {usage.actors} inference actor(s) busy {usage.busy_fraction:.0%} of their "
        f"{usage.span_s:.1f} s after loading (idle {usage.before_first_s:.1f} s before the first batch, "
        f"{usage.between_batches_s:.1f} s between batches)"
    )
    if usage.span_s > 0 and usage.between_batches_s / usage.span_s > WAITING_HINT:
        _, input_workers = pool_sizes(configs)
        line += (f"; the model waited for its inputs: more resources.input_workers (now {input_workers}) "
                 "helps where CPUs are free")
    return line


def _prepare(
    config: RunConfig, rows_per_group: int, retry_errors: bool, accept_changes: bool, log: Callable[[str], None],
) -> tuple[int, int, str]:
    """Reconciles one run's folder and writes its queue; returns (samples, queued, fingerprint)."""
    (config.run_dir / GENERATIONS_DIR).mkdir(parents=True, exist_ok=True)
    reconcile(config.run_dir, config.run_id, log)
    samples, _ = iter_samples(config)
    recorded = read_fingerprint(config.run_dir)
    done = committed_sample_ids(config.run_dir)
    errors = committed_sample_ids(config.run_dir, errors_only=True)
    check_producer(config.run_dir, config.run_id, bool(done - errors), accept_changes, log)
    if recorded is None and done:
        log(f"{config.run_id}: no benchmark fingerprint recorded (a run of an older halleval); "
            "recording the current benchmark's")
    check = FingerprintCheck(recorded)
    queue = queue_path(config.run_dir)
    requeued: set[str] = set()
    total, todo = write_queue(samples, done, config.run_id, queue, rows_per_group, check,
                              retry=errors if retry_errors else set(), requeued=requeued)
    # Only good rows are protected: an error row holds no output that an edit could make stale.
    stale = check.differences(committed=done - errors)
    if stale and not accept_changes:
        shutil.rmtree(queue.parent, ignore_errors=True)
        raise BenchmarkChangedError(
            f"{config.benchmark.root}: the {config.benchmark.name} benchmark changed since run "
            f"{config.run_id} started: {stale.describe()}; re-run with --accept-changes to "
            "regenerate those samples (removed ones lose their rows), or set another output_dir "
            "for a new run"
        )
    changes = check.differences()
    if changes:
        log(f"{config.run_id}: the benchmark changed ({changes.describe()}); generating from the current one")
    if retried := len(requeued & errors):
        log(f"{config.run_id}: {retried} error row(s) will be generated again (--keep-errors keeps them)")
    _retire(config.run_dir, requeued | (set(changes.removed) & done))
    digest = write_fingerprint(config.run_dir, check.current)
    log(f"{config.run_id}: {total} samples, {total - todo} already generated, {todo} to go")
    return total, todo, digest


def _batch_size(configs: Sequence[RunConfig]) -> int:
    """The batch size of a model group: the smallest its runs ask for (it changes no output)."""
    return min(c.generation.batch_size for c in configs)


def _run_pipeline(
    configs: list[RunConfig], queues: list[Path], cells: list[tuple[str, str]],
    folders: dict[str, Path], load_log: Path | None, trace: Path | None = None,
) -> None:
    """One model group's queue pieces -> input workers -> inference actors -> sink.

    Each queue row group (a few batches) is one block, so every actor of the pool gets work and
    the driver handles only the list of pieces. A fixed pool of CPU input workers
    (`resources.input_workers`) reads each piece, decodes its images or videos and runs the
    model's processor while the inference actors generate, so those only batch and run the
    model. The input stage is an actor pool rather than tasks because every worker process
    imports torch and transformers and loads the processor: a task pool would start as many
    processes as there are free CPU slots, each paying that start-up beside the model. Rows stay
    in run order, so most batches hold one run; the pools are sized by `pool_sizes`.
    """
    resources = configs[0].resources
    actors, input_workers = pool_sizes(configs)
    pieces = [
        {"queue": str(queue), "row_group": group}
        for queue in queues for group in range(pq.ParquetFile(queue).num_row_groups)
    ]
    dataset = ray.data.from_items(pieces, override_num_blocks=len(pieces))
    dataset = dataset.map_batches(
        InputStage, fn_constructor_kwargs={"cells": cells}, batch_size=1, batch_format="pyarrow",
        compute=ActorPoolStrategy(size=input_workers), num_cpus=INPUT_WORKER_CPUS,
    )
    dataset = dataset.map_batches(
        InferenceStage,
        fn_constructor_kwargs={"cells": cells, "load_log": str(load_log) if load_log else None,
                               "trace": str(trace) if trace else None},
        batch_size=_batch_size(configs),
        compute=ActorPoolStrategy(size=actors),
        num_gpus=resources.gpus_per_actor,
        num_cpus=resources.cpus_per_actor,
        batch_format="pyarrow",
    )
    # One write task in flight per inference actor: a write commits a block in milliseconds, but
    # each further write worker process costs ~1 s of CPU to start, which on a small node is taken
    # from the model (Ray Data would start one per free CPU slot).
    dataset.write_datasink(CommittedParquetSink(folders), ray_remote_args={"num_cpus": WRITE_CPUS}, concurrency=actors)
