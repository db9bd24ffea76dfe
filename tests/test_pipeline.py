"""Generation through the real Ray Data pipeline on a local Ray: rows, resume, bad images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from pipeline.api import BenchmarkError
from pipeline.config import build_config, write_config
from pipeline.run import generate
from pipeline.schema import GENERATION_SCHEMA, generation_files, read_generations


def _config(root: Path, out: Path, *overrides: str):
    data = {
        "benchmark": {"name": "chair", "root": str(root)},
        "generation": {"max_new_tokens": 6, "batch_size": 3},
        "output_dir": str(out),
    }
    return build_config(data, list(overrides))


def test_one_row_per_sample_then_resume_generates_nothing(local_ray, synth, tmp_path):
    config = _config(synth.coco_root, tmp_path)
    lines: list[str] = []
    first = generate(config, log=lines.append)
    assert (first.n_samples, first.n_generated, first.n_resumed) == (8, 8, 0)
    usage = [line for line in lines if "inference actor(s) busy" in line]
    assert len(usage) == 1 and usage[0].startswith("llava15: 1 inference actor(s) busy ")
    assert 0 < first.actor_busy <= 1 and f"busy {first.actor_busy:.0%} of their " in usage[0]
    assert not (config.run_dir / ".queue").exists()  # the trace left with the queue
    table = read_generations(config.run_dir)
    ids = table.column("sample_id").to_pylist()
    assert len(ids) == len(set(ids)) == 8
    assert pq.read_schema(generation_files(config.run_dir)[0]).equals(GENERATION_SCHEMA)
    rows = table.to_pylist()
    assert all(row["error"] is None and 1 <= row["n_generated"] == len(row["token_ids"]) <= 6 for row in rows)
    assert all(row["run_id"] == config.run_id and row["method"] == "greedy" for row in rows)
    assert all(len(row["tokens"]) == len(row["token_offsets"]) == len(row["logprobs"]) == row["n_generated"] for row in rows)
    for row in rows:  # offsets point at each token's text in output_text
        for piece, offset in zip(row["tokens"], row["token_offsets"]):
            assert row["output_text"][offset:].startswith(piece.strip())

    lines.clear()
    again = generate(config, log=lines.append)
    assert (again.n_generated, again.n_resumed) == (0, 8)
    assert again.actor_busy is None and not any("busy" in line for line in lines)
    assert read_generations(config.run_dir).num_rows == 8


def test_half_finished_run_resumes_only_the_missing_samples(local_ray, synth, tmp_path):
    full = _config(synth.coco_root, tmp_path / "full")
    generate(full, log=lambda _: None)
    expected = {r["sample_id"]: r["output_text"] for r in read_generations(full.run_dir).to_pylist()}

    partial = _config(synth.coco_root, tmp_path / "partial", "resources.num_actors=2", "generation.batch_size=2")
    assert partial.run_id == full.run_id
    folder = partial.run_dir / "generations"
    folder.mkdir(parents=True)
    kept = read_generations(full.run_dir).slice(0, 3)
    pq.write_table(kept, folder / "part-kept.parquet")
    (folder / ".part-dead.parquet.partial").write_bytes(b"PAR1 truncated by a kill")

    summary = generate(partial, log=lambda _: None)
    assert (summary.n_generated, summary.n_resumed) == (5, 3)
    resumed = {r["sample_id"]: r["output_text"] for r in read_generations(partial.run_dir).to_pylist()}
    assert resumed == expected


def test_corrupt_image_becomes_an_error_row_and_the_rest_are_generated(local_ray, synth, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(synth.coco_root, root)
    images = sorted((root / "val2014").glob("*.jpg"))
    images[0].write_bytes(images[0].read_bytes()[:200])  # truncated JPEG
    images[1].write_text("this is not an image")
    config = _config(root, tmp_path / "out")
    generate(config, log=lambda _: None)
    rows = {r["image_path"]: r for r in read_generations(config.run_dir).to_pylist()}
    assert len(rows) == 8
    for broken in images[:2]:
        row = rows[str(broken)]
        assert row["error"] and broken.name in row["error"]
        assert row["output_text"] is None
    assert sum(r["error"] is None for r in rows.values()) == 6


def test_missing_benchmark_folder_is_a_clear_error(local_ray, tmp_path):
    config = _config(tmp_path / "no-such-coco", tmp_path / "out")
    with pytest.raises(BenchmarkError, match="no-such-coco"):
        generate(config, log=lambda _: None)


def test_sgrs_run_records_saliency_that_saliency_bins_scores(local_ray, synth, tmp_path):
    config = _config(synth.coco_root, tmp_path, "method.name=sgrs", "benchmark.limit=4")
    generate(config, log=lambda _: None)
    write_config(config, config.run_dir / "config.yaml")
    rows = read_generations(config.run_dir).to_pylist()
    assert len(rows) == 4
    for row in rows:
        n = row["n_generated"]
        assert len(row["saliency"]) == len(row["tau"]) == len(row["rejections"]) == len(row["fallback"]) == n
        assert row["tau"][0] == 0.0  # empty history at the first step
        assert row["total_rejections"] == sum(row["rejections"])
        assert any(s > 0 for s in row["saliency"])

    out = tmp_path / "bins.json"
    # No --coco-annotations: the benchmark root comes from the run's config.yaml.
    assert main(["score", "saliency-bins", "--run", str(config.run_dir), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert sum(b["tokens"] for b in result["bins"]) == result["n_object_tokens"] > 0
    assert (config.run_dir / "saliency_bins.png").is_file()
