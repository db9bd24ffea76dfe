"""`halleval demo` end to end through the CLI on a local Ray: the organism's method table, and the
random tiny model's runs, each with Parquet, scores and reports."""

from __future__ import annotations

import json

import pytest

from jobs.cli import main
from pipeline.schema import read_generations


def _check_runs(runs, printed):
    for run_dir in runs:
        scores = json.loads((run_dir / "scores.json").read_text())
        table = read_generations(run_dir)
        assert scores["run_id"] == run_dir.name
        assert scores["n_samples"] == table.num_rows > 0
        assert len(set(table.column("sample_id").to_pylist())) == table.num_rows
        assert (run_dir / "report.md").is_file() and (run_dir / "config.yaml").is_file()
        assert scores["run_id"] in printed


@pytest.mark.slow
def test_demo_runs_the_organism_and_prints_the_method_table(local_ray, tmp_path, capsys):
    argv = ["demo", "--out", str(tmp_path), "--images", "6", "--pope-questions", "6", "--methods", "greedy,sgrs"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert [p.name.split("-")[0] + "-" + p.name.split("-")[2] for p in runs] == [
        "chair-greedy", "chair-sgrs", "pope-greedy", "pope-sgrs"]
    _check_runs(runs, printed)
    header = next(line for line in printed.splitlines() if line.startswith("| method"))
    assert "CHAIR_s" in header and "planted" in header and "POPE F1" in header and "s/sample" in header
    rows = {line.split("|")[1].strip(): line for line in printed.splitlines() if line.startswith("| greedy") or line.startswith("| sgrs")}
    assert set(rows) == {"greedy", "sgrs"}
    chair = json.loads((runs[0] / "scores.json").read_text())["metrics"]["chair"]
    assert chair["n_captions"] == 6 and chair["recall"] > 0.8  # the trained organism captions well
    assert f"{chair['chair_s']:.3f}" in rows["greedy"]
    assert "demo finished" in printed


@pytest.mark.slow
def test_random_model_demo_writes_generations_scores_and_reports(local_ray, tmp_path, capsys):
    assert main(["demo", "--random-model", "--out", str(tmp_path), "--images", "6"]) == 0
    printed = capsys.readouterr().out
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert [p.name.split("-")[0] for p in runs] == ["chair", "pope"]
    _check_runs(runs, printed)
    chair = json.loads((runs[0] / "scores.json").read_text())["metrics"]["chair"]
    assert chair["n_captions"] == 6 and 0 <= chair["chair_s"] <= 1
    pope = json.loads((runs[1] / "scores.json").read_text())["metrics"]["pope"]
    assert pope["tp"] + pope["fp"] + pope["tn"] + pope["fn"] == pope["n"] == 36  # 6 images x 6 questions
    assert "demo finished" in printed
