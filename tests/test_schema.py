"""The generations Parquet schema: round trip, partial files ignored, duplicates collapsed."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.schema import GENERATION_SCHEMA, GENERATIONS_DIR, read_generations, to_table


def _row(sample_id: str, **extra) -> dict:
    return {
        "run_id": "r", "sample_id": sample_id, "benchmark": "chair", "model": "llava15", "method": "sgrs",
        "output_text": "a dog", "token_ids": [5, 6], "tokens": ["a", " dog"], "token_offsets": [0, 2],
        "logprobs": [-0.5, -1.25], "saliency": [0.5, 0.25], "tau": [0.0, 0.3], "rejections": [0, 2],
        "fallback": [False, True], "total_rejections": 2, "total_fallbacks": 1,
        "candidate_ids": [[5, 7], [6, 8]], "candidate_saliency": [[0.5, 0.125], [0.25, 0.75]],
        "n_generated": 2, "latency_s": 0.1, "seed": 0, **extra,
    }


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table(rows), folder / name)


def test_round_trip_keeps_schema_and_nested_values(tmp_path: Path):
    _write(tmp_path / GENERATIONS_DIR, "part-a.parquet", [_row("s1"), _row("s2", error="bad image", token_ids=None)])
    table = read_generations(tmp_path)
    assert table.schema.equals(GENERATION_SCHEMA)
    first, second = table.to_pylist()
    assert first["candidate_saliency"] == [[0.5, 0.125], [0.25, 0.75]]  # exact in float32
    assert first["fallback"] == [False, True]
    assert first["error"] is None and second["error"] == "bad image"
    assert second["token_ids"] is None


def test_partial_files_are_ignored_and_duplicates_collapse(tmp_path: Path):
    folder = tmp_path / GENERATIONS_DIR
    _write(folder, "part-a.parquet", [_row("s1"), _row("s2")])
    _write(folder, "part-b.parquet", [_row("s2"), _row("s3")])  # a retried write committed s2 twice
    _write(folder, ".part-c.parquet.partial", [_row("s4")])  # a killed writer's leftover
    table = read_generations(folder)
    assert table.column("sample_id").to_pylist() == ["s1", "s2", "s3"]


def test_missing_columns_are_null_and_wrong_types_fail():
    table = to_table([{"run_id": "r", "sample_id": "s", "benchmark": "b", "model": "m", "method": "greedy"}])
    assert table.column("saliency").to_pylist() == [None]
    with pytest.raises(Exception):
        to_table([_row("s1", token_ids=["not", "ints"])])


def test_reading_a_run_without_generations_names_the_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no generations in"):
        read_generations(tmp_path)
