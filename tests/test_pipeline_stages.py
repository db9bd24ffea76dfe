"""The CPU stage of the pipeline (queue read + decode + processor): what it hands the model actor
equals what the actor would build itself, tensor for tensor, it reads the queue pieces it is
given in order, it loads each processor once per worker, a file that does not decode becomes an
error row, the write tasks' workers need neither torch nor transformers, and the model actor's
trace gives its busy fraction."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import torch

from pipeline.api import Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.config import build_config
from pipeline.inference import MODEL_INPUTS, ActorUsage, InferenceStage, InputStage, _processor, prepare_inputs, processed
from pipeline.model_inputs import from_bytes
from pipeline.models import MODELS
from pipeline.run import _usage_line, write_queue


def _rows(root, name: str, n: int, model: str = "llava15") -> tuple[list[dict], object]:
    config = build_config({"benchmark": {"name": name, "root": str(root), "limit": n},
                           "model": {"name": model},
                           "generation": {"max_new_tokens": 3, "batch_size": 4}})
    samples = list(BENCHMARKS.get(name)().samples(config.benchmark, config.seed))[:n]
    return [{**s.to_row(), "run_id": config.run_id} for s in samples], config


def test_prepared_inputs_equal_the_actors_own_processing(synth, tmp_path):
    for name, root, model in (("chair", synth.coco_root, "llava15"), ("msvd_qa", synth.msvd_qa_root, "video_llava")):
        rows, config = _rows(root, name, 3, model)
        rows[1] = {**rows[1], "image_path": str(tmp_path / "missing.jpg"), "video_path": None}
        cells = [(config.model_dump_json(), "1")]
        out = prepare_inputs(pa.Table.from_pylist(rows), cells).to_pylist()
        assert out[1]["error"] and "does not exist" in out[1]["error"] and out[1][MODEL_INPUTS] is None
        loaded = MODELS.get(model)().load("tiny", torch.float32, "cpu")
        for row in (out[0], out[2]):
            assert row["error"] is None
            expected = processed(loaded.adapter, loaded.processor, config, Sample.from_row(row))
            got = from_bytes(row[MODEL_INPUTS])
            assert set(got) == set(expected) and "input_ids" in got
            assert any(key.startswith("pixel_values") for key in got)
            for key, value in expected.items():
                assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def test_the_stage_loads_a_processor_once_per_worker(synth):
    rows, config = _rows(synth.coco_root, "chair", 4)
    _processor.cache_clear()
    for _ in range(3):
        prepare_inputs(pa.Table.from_pylist(rows), [(config.model_dump_json(), "1")])
    info = _processor.cache_info()
    assert (info.misses, info.hits) == (1, 11)


def test_a_processor_failure_is_that_samples_error_row(synth):
    rows, config = _rows(synth.coco_root, "chair", 3)
    rows[2] = {**rows[2], "prompt": "<image> <image> a second placeholder"}  # LLaVA: 1 image, 3 tokens
    out = prepare_inputs(pa.Table.from_pylist(rows), [(config.model_dump_json(), "1")]).to_pylist()
    assert [row["error"] is None for row in out] == [True, True, False]
    assert out[2]["error"].startswith("processing failed: ValueError:")
    stage = InferenceStage(cells=[(config.model_dump_json(), "1")])
    generated = stage(pa.Table.from_pylist(out)).to_pylist()
    assert [row["error"] is None for row in generated] == [True, True, False]
    assert generated[2]["error"] == out[2]["error"] and generated[0]["n_generated"] > 0


def test_the_actor_generates_the_same_from_prepared_rows_as_from_paths(synth):
    rows, config = _rows(synth.coco_root, "chair", 4)
    stage = InferenceStage(cells=[(config.model_dump_json(), "1")])
    from_paths = stage(pa.Table.from_pylist(rows)).to_pylist()
    prepared = prepare_inputs(pa.Table.from_pylist(rows), [(config.model_dump_json(), "1")])
    from_inputs = stage(prepared).to_pylist()
    drop = {"latency_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in from_inputs] == \
        [{k: v for k, v in r.items() if k not in drop} for r in from_paths]


def test_the_input_stage_reads_the_queue_pieces_it_is_given_in_order(synth, tmp_path):
    rows, config = _rows(synth.coco_root, "chair", 7)
    samples = [Sample.from_row(row) for row in rows]
    queue = tmp_path / ".queue" / "todo.parquet"
    assert write_queue(samples, set(), config.run_id, queue, rows_per_group=3) == (7, 7)
    pieces = pa.Table.from_pylist([{"queue": str(queue), "row_group": group} for group in (2, 0)])
    out = InputStage(cells=[(config.model_dump_json(), "1")])(pieces).to_pylist()
    assert [row["sample_id"] for row in out] == [samples[i].sample_id for i in (6, 0, 1, 2)]
    assert all(row["error"] is None and row[MODEL_INPUTS] for row in out)
    assert {row["run_id"] for row in out} == {config.run_id}


def test_the_sink_imports_neither_torch_nor_transformers():
    """Ray unpickles the sink in every write task's worker: importing the model stack there
    cost ~7 s of CPU per worker process, beside the model."""
    code = ("import sys; import pipeline.sink; "
            "print(sorted({'torch', 'transformers'} & {name.split('.')[0] for name in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_actor_trace_gives_its_busy_time(synth, tmp_path):
    rows, config = _rows(synth.coco_root, "chair", 4)
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"host": "earlier", "pid": 1, "ready": 0.0}\n')  # another pipeline's line
    offset = trace.stat().st_size
    stage = InferenceStage(cells=[(config.model_dump_json(), "1")], trace=str(trace))
    records = [json.loads(line) for line in trace.read_text().splitlines()[1:]]
    assert ActorUsage.from_trace(trace, offset) is None  # ready, but no batch yet
    prepared = prepare_inputs(pa.Table.from_pylist(rows), [(config.model_dump_json(), "1")])
    stage(prepared.slice(0, 2))
    stage(prepared.slice(2, 2))
    records = [json.loads(line) for line in trace.read_text().splitlines()[1:]]
    assert [sorted(r) for r in records] == [["host", "pid", "ready"]] + [["end", "host", "pid", "rows", "start"]] * 2
    usage = ActorUsage.from_trace(trace, offset)
    busy = sum(r["end"] - r["start"] for r in records[1:])
    assert usage.actors == 1 and usage.busy_s == busy > 0
    assert usage.span_s == records[2]["end"] - records[0]["ready"] >= busy
    assert usage.before_first_s == records[1]["start"] - records[0]["ready"]
    assert 0 < usage.busy_fraction <= 1


def test_actor_usage_sums_over_actors_by_host_and_pid(tmp_path):
    trace = tmp_path / "trace.jsonl"
    lines = [
        {"host": "a", "pid": 7, "ready": 10.0}, {"host": "b", "pid": 7, "ready": 11.0},
        {"host": "a", "pid": 7, "start": 11.0, "end": 13.0, "rows": 8},
        {"host": "b", "pid": 7, "start": 11.5, "end": 12.5, "rows": 8},
        {"host": "a", "pid": 7, "start": 14.0, "end": 15.0, "rows": 8},
        {"host": "c", "pid": 9, "ready": 12.0},  # loaded, then killed before a batch: no span
    ]
    junk = '[1, 2]\n{"host": "a", "pid": 7}\n{"host": "b", "pid": 7, "start": "soon", "end": 1}\n'
    trace.write_text("".join(json.dumps(line) + "\n" for line in lines) + junk + '{"host": "b", "pid": 7, "sta')
    usage = ActorUsage.from_trace(trace)  # the junk and the line cut short by a kill are skipped
    assert (usage.actors, usage.busy_s, usage.span_s, usage.before_first_s) == (2, 4.0, 5.0 + 1.5, 1.0 + 0.5)
    assert usage.between_batches_s == 1.0 and usage.busy_fraction == 4.0 / 6.5


def test_the_usage_line_suggests_input_workers_only_when_the_model_waited_between_batches():
    config = build_config({"benchmark": {"name": "chair", "root": "/data/coco"},
                           "resources": {"num_actors": 2, "input_workers": 3}})
    waited = _usage_line([config], ActorUsage(actors=2, busy_s=6.0, span_s=10.0, before_first_s=1.0))
    assert waited.startswith("llava15: 2 inference actor(s) busy 60% of their 10.0 s after loading (idle 1.0 s "
                             "before the first batch, 3.0 s between batches)")
    assert waited.endswith("; the model waited for its inputs: more resources.input_workers (now 3) helps "
                           "where CPUs are free")
    # A slow first batch (decoding the first inputs) is start-up, not a shortage of input workers.
    started_late = _usage_line([config], ActorUsage(actors=1, busy_s=6.0, span_s=10.0, before_first_s=3.5))
    assert "busy 60%" in started_late and "input_workers" not in started_late


def test_a_trace_that_cannot_be_written_never_fails_a_batch(synth, tmp_path):
    rows, config = _rows(synth.coco_root, "chair", 2)
    gone = tmp_path / "queue-removed" / "trace.jsonl"  # its folder does not exist
    stage = InferenceStage(cells=[(config.model_dump_json(), "1")], trace=str(gone))
    out = stage(pa.Table.from_pylist(rows)).to_pylist()
    assert [row["error"] for row in out] == [None, None] and not gone.exists()
