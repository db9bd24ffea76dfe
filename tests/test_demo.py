"""`halleval demo` end to end through the CLI on a local Ray: Parquet, scores and reports."""

from __future__ import annotations

import json

import pytest

from jobs.cli import main
from pipeline.schema import read_generations


@pytest.mark.slow
def test_demo_writes_generations_scores_and_reports(local_ray, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--images", "6"]) == 0
    printed = capsys.readouterr().out
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert [p.name.split("-")[0] for p in runs] == ["chair", "pope"]
    for run_dir in runs:
        scores = json.loads((run_dir / "scores.json").read_text())
        table = read_generations(run_dir)
        assert scores["run_id"] == run_dir.name
        assert scores["n_samples"] == table.num_rows > 0
        assert len(set(table.column("sample_id").to_pylist())) == table.num_rows
        assert (run_dir / "report.md").is_file() and (run_dir / "config.yaml").is_file()
        assert scores["run_id"] in printed
    chair = json.loads((runs[0] / "scores.json").read_text())["metrics"]["chair"]
    assert chair["n_captions"] == 6 and 0 <= chair["chair_s"] <= 1
    pope = json.loads((runs[1] / "scores.json").read_text())["metrics"]["pope"]
    assert pope["tp"] + pope["fp"] + pope["tn"] + pope["fn"] == pope["n"] == 36  # 6 images x 6 questions
    assert "demo finished" in printed
