"""Samples stream from the reader through an on-disk queue: bounded driver memory, no queue left
behind, and a stale queue from a killed run neither duplicates nor loses samples."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline import run
from pipeline.api import BenchmarkError, Sample
from pipeline.config import build_config
from pipeline.run import (
    QUEUE_DIR,
    QUEUE_SCHEMA,
    generate,
    load_samples,
    queue_path,
    write_queue,
)
from pipeline.schema import read_generations


def _config(root: Path, out: Path, *overrides: str):
    data = {
        "benchmark": {"name": "pope", "root": str(root)},
        "generation": {"max_new_tokens": 2, "batch_size": 4},
        "resources": {"num_actors": 2},
        "output_dir": str(out),
    }
    return build_config(data, list(overrides))


def _samples(n: int) -> list[Sample]:
    return [Sample(sample_id=f"s{i}", benchmark="pope", prompt=f"q{i}", image_path=f"/x/{i}.jpg") for i in range(n)]


def test_queue_keeps_reader_order_in_row_groups_and_skips_committed(tmp_path):
    path = queue_path(tmp_path)
    assert (path.parent.name, path.parent.parent) == (QUEUE_DIR, tmp_path)
    total, queued = write_queue(iter(_samples(10)), {"s3"}, "run-a", path, rows_per_group=4)
    assert (total, queued) == (10, 9)
    file = pq.ParquetFile(path)
    assert file.schema_arrow.equals(QUEUE_SCHEMA)
    assert [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)] == [4, 4, 1]
    rows = file.read().to_pylist()
    assert [r["sample_id"] for r in rows] == [f"s{i}" for i in range(10) if i != 3]
    assert {r["run_id"] for r in rows} == {"run-a"}
    assert Sample.from_row(rows[0]) == _samples(1)[0]

    # Nothing left to do: no queue file, and the previous one is gone rather than reused.
    assert write_queue(iter(_samples(2)), {"s0", "s1"}, "run-a", path, rows_per_group=4) == (2, 0)
    assert not path.parent.exists()


def test_reader_error_mid_stream_leaves_no_queue(tmp_path, synth, monkeypatch):
    config = _config(synth.pope_root, tmp_path)

    def failing(config):
        def samples():
            yield from _samples(3)
            raise BenchmarkError("bad line 4")
        return samples(), "1"

    monkeypatch.setattr(run, "iter_samples", failing)
    with pytest.raises(BenchmarkError, match="bad line 4"):
        generate(config, log=lambda _: None)
    assert not (config.run_dir / QUEUE_DIR).exists()


def test_small_object_store_run_has_one_row_per_sample_and_no_queue_left(local_ray, synth, tmp_path):
    # The session's Ray has a 300 MB object store; the queue's row groups (pieces of a few
    # batches) are read by tasks and spread over two actors.
    config = _config(synth.pope_root, tmp_path)
    expected = [s.sample_id for s in load_samples(config)[0]]
    rows_per_group = run.BATCHES_PER_PIECE * config.generation.batch_size
    assert len(expected) > 2 * rows_per_group
    lines: list[str] = []
    summary = generate(config, log=lines.append)
    assert (summary.n_samples, summary.n_generated, summary.n_resumed) == (len(expected), len(expected), 0)
    assert lines[0] == f"{config.run_id}: {len(expected)} samples, 0 already generated, {len(expected)} to go"
    assert len(lines) == 2 and lines[1].startswith("llava15: ") and " inference actor(s) busy " in lines[1]
    ids = read_generations(config.run_dir).column("sample_id").to_pylist()
    assert sorted(ids) == sorted(expected)
    assert not (config.run_dir / QUEUE_DIR).exists()


def test_stale_queue_from_a_killed_run_neither_duplicates_nor_loses_samples(local_ray, synth, tmp_path):
    config = _config(synth.pope_root, tmp_path)
    samples = load_samples(config)[0]
    expected = sorted(s.sample_id for s in samples)
    # The killed run had queued every sample plus one that is not in the benchmark, and had
    # committed nothing yet; its queue file was cut short mid-write.
    write_queue(
        iter(samples + [Sample("stale-only", "pope", "q")]), set(), config.run_id, queue_path(config.run_dir), 8
    )
    stale = queue_path(config.run_dir)
    (stale.parent / "todo-other.parquet").write_bytes(stale.read_bytes())
    stale.write_bytes(stale.read_bytes()[:100])

    summary = generate(config, log=lambda _: None)
    assert (summary.n_samples, summary.n_generated) == (len(expected), len(expected))
    ids = read_generations(config.run_dir).column("sample_id").to_pylist()
    assert sorted(ids) == expected
    assert not (config.run_dir / QUEUE_DIR).exists()

    # A re-run killed after writing its queue: the next run finds everything committed.
    write_queue(iter(samples), set(), config.run_id, queue_path(config.run_dir), 8)
    again = generate(config, log=lambda _: None)
    assert (again.n_generated, again.n_resumed) == (0, len(expected))
    assert sorted(read_generations(config.run_dir).column("sample_id").to_pylist()) == expected
    assert not (config.run_dir / QUEUE_DIR).exists()
