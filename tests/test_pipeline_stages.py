"""The CPU decode stage of the pipeline: what it hands the model actor equals what the actor
would decode itself, bit for bit, and a file that does not decode becomes an error row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pipeline.api import Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.config import build_config
from pipeline.inference import FRAMES, InferenceStage, decode_visuals
from pipeline.visuals import load_visual


def _rows(root, name: str, n: int) -> tuple[list[dict], object]:
    config = build_config({"benchmark": {"name": name, "root": str(root), "limit": n},
                           "generation": {"max_new_tokens": 3, "batch_size": 4}})
    samples = list(BENCHMARKS.get(name)().samples(config.benchmark, config.seed))[:n]
    return [{**s.to_row(), "run_id": config.run_id} for s in samples], config


def test_decoded_frames_equal_the_actors_own_decoding(synth, tmp_path):
    for name, root in (("chair", synth.coco_root), ("msvd_qa", synth.msvd_qa_root)):
        rows, config = _rows(root, name, 3)
        rows[1] = {**rows[1], "image_path": str(tmp_path / "missing.jpg"), "video_path": None}
        decoded = decode_visuals(pa.Table.from_pylist(rows), {config.run_id: config.benchmark.num_frames})
        out = decoded.to_pylist()
        assert out[1]["error"] and "does not exist" in out[1]["error"] and out[1][FRAMES] == []
        for row in (out[0], out[2]):
            expected = load_visual(Sample.from_row(row), config.benchmark.num_frames)
            assert row["modality"] == expected.modality and len(row[FRAMES]) == len(expected.images)
            for data, (height, width), image in zip(row[FRAMES], row["frame_shapes"], expected.images):
                assert (height, width) == (image.height, image.width)
                assert np.array_equal(np.frombuffer(data, np.uint8).reshape(height, width, 3), np.asarray(image))


def test_the_actor_generates_the_same_from_decoded_rows_as_from_paths(synth):
    rows, config = _rows(synth.coco_root, "chair", 4)
    stage = InferenceStage(cells=[(config.model_dump_json(), "1")])
    from_paths = stage(pa.Table.from_pylist(rows)).to_pylist()
    decoded = decode_visuals(pa.Table.from_pylist(rows), {config.run_id: config.benchmark.num_frames})
    from_frames = stage(decoded).to_pylist()
    drop = {"latency_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in from_frames] == \
        [{k: v for k, v in r.items() if k not in drop} for r in from_paths]
