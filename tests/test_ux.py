"""What a new user meets first: fast start-up, `list`, flag-driven runs, progress, per-sample
results with standard errors, leaderboards and reports that fit their benchmark."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from eval.api import ScoringContext
from eval.leaderboard import find_runs
from eval.report import render_html, render_markdown
from eval.scoring import SAMPLES_FILE, SCORES_FILE, bootstrap_stderr, evaluate, samples_table
from jobs.cli import main
from jobs.console import Progress
from jobs.grid_config import load_grid
from pipeline.registry import Registry, scan_module
from pipeline.schema import GENERATIONS_DIR, to_table

REPO = Path(__file__).resolve().parent.parent


def _imports_after(code: str) -> dict[str, bool]:
    """Which heavy packages a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport sys, json; print(json.dumps({{m: m in sys.modules for m in ('torch', 'ray', 'transformers')}}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_help_and_config_checks_import_neither_torch_nor_ray(tmp_path):
    assert not any(_imports_after(
        "from jobs.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass").values())
    config = tmp_path / "typo.yaml"
    config.write_text("model: {name: lava15}\nbenchmark: {name: pope, root: x}\n")
    imported = _imports_after(f"from jobs.cli import main\nassert main(['run', {str(config)!r}]) == 2")
    assert not any(imported.values())


def test_unknown_model_is_named_with_its_close_match(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("model: {name: lava15}\nbenchmark: {name: pope, root: x}\n")
    assert main(["run", str(config)]) == 2
    assert "did you mean 'llava15'?" in capsys.readouterr().err


def test_missing_benchmark_folder_fails_before_ray_and_before_any_run_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["run", "--model", "llava15", "--benchmarks", f"pope={tmp_path / 'nope'}", "--output-dir", str(runs)])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert "benchmark folder" in error and "does not exist" in error
    assert not runs.exists()


def _with_missing_pope(kind: str, synth, tmp_path: Path) -> Path:
    """configs/<kind>/tiny.yaml on the synthetic CHAIR set, its POPE folder missing."""
    text = (REPO / "configs" / kind / "tiny.yaml").read_text()
    text = text.replace("data/synth/coco", str(synth.coco_root)).replace("data/synth/pope", str(tmp_path / "gone"))
    if kind == "grids":  # the tiny grid is CHAIR only: make it a CHAIR x POPE grid
        text = text.replace("axes:\n", f"axes:\n  benchmark: [{{name: chair, root: {synth.coco_root}}}, "
                            f"{{name: pope, root: {tmp_path / 'gone'}}}]\n")
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text.replace("output_dir: runs", f"output_dir: {tmp_path / 'runs'}"))
    return path


@pytest.mark.parametrize("command", ["run", "grid", "nightly"])
def test_several_runs_check_every_benchmark_before_ray_and_before_any_folder(command, synth, tmp_path):
    if command == "run":  # two methods x two benchmarks: the several-runs (grid) path
        args = ["run", "--model", "llava15", "--model-args", "checkpoint=tiny", "--methods", "greedy,sample",
                "--benchmarks", f"chair={synth.coco_root},pope={tmp_path / 'gone'}", "--output-dir", str(tmp_path / "runs")]
    elif command == "grid":
        args = ["grid", str(_with_missing_pope("grids", synth, tmp_path))]
    else:
        args = ["nightly", str(_with_missing_pope("suites", synth, tmp_path)), "--baseline", str(tmp_path / "l.parquet")]
    # A fresh interpreter, where no other test's Ray runs.
    probe = (f"import sys\nfrom jobs.cli import main\ncode = main({args!r})\n"
             "print(code, 'ray' in sys.modules and sys.modules['ray'].is_initialized())")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.stdout.split() == ["2", "False"], result.stderr
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1 and f"benchmark folder {tmp_path / 'gone'} (pope) does not exist" in error
    assert not (tmp_path / "runs").exists()


def test_unreadable_benchmark_is_reported_before_ray(tmp_path, capsys):
    (tmp_path / "pope").mkdir()  # a folder without the question file
    assert main(["run", "--model", "llava15", "--benchmarks", "pope", "--data-root", str(tmp_path),
                 "--output-dir", str(tmp_path / "runs")]) == 2
    assert "POPE question file" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_list_shows_names_descriptions_and_defaults(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for expected in ("models (", "llava15", "default_locore_beta: 0.15", "methods (", "sgrs+locore",
                     "parameters (--method-args", "benchmarks (", "pope", "metrics (", "chair_s ↓",
                     "judges (", "replay"):
        assert expected in out
    assert main(["list", "modles"]) == 2
    assert "did you mean 'models'" in capsys.readouterr().err


def test_registry_index_reads_names_without_importing(tmp_path):
    plugin = tmp_path / "plug.py"
    plugin.write_text('"""Plug-ins."""\n@R.register("alpha")\nclass A:\n    """The alpha one. More."""\n'
                      '    modality = "image"\nR.register("beta")(lambda: 1)\n')
    entries, complete = scan_module(plugin, "plug")
    assert [(e.name, e.summary) for e in entries] == [("alpha", "The alpha one."), ("beta", "Plug-ins.")]
    assert entries[0].attributes == {"modality": "image"} and complete
    plugin.write_text('NAME = "x"\nR.register(NAME)(object)\n')
    assert scan_module(plugin, "plug") == ([], False)  # a computed name: the registry imports instead
    from pipeline.models import MODELS

    assert "llava15" in MODELS.index() and MODELS.index()["llava15"].module == "pipeline.models.llava"
    assert isinstance(Registry("thing").names(), list)


def test_flags_expand_to_runs_and_write_the_equivalent_grid(synth, tmp_path):
    from jobs.run import expand, flag_runs, write_flag_grid
    from jobs.cli import build_parser

    args = build_parser("run").parse_args([
        "run", "--model", "llava15", "--model-args", "checkpoint=tiny,dtype=float32", "--methods", "greedy,sgrs",
        "--benchmarks", f"pope={synth.pope_root},chair={synth.coco_root}", "--limit", "5",
        "--method-args", "top_k=4", "--output-dir", str(tmp_path / "runs"),
    ])
    base, axes = flag_runs(args)
    configs = expand(base, axes, ["generation.max_new_tokens=8"], source="flags")
    assert [(c.method.name, c.benchmark.name) for c in configs] == [
        ("greedy", "pope"), ("greedy", "chair"), ("sgrs", "pope"), ("sgrs", "chair")]
    assert all(c.benchmark.limit == 5 and c.generation.max_new_tokens == 8 for c in configs)
    # top_k is SGRS's parameter: it reaches the SGRS runs only (greedy takes no top_k)
    assert [getattr(c.method, "top_k", None) for c in configs] == [None, None, 4, 4]
    grid = load_grid(write_flag_grid("flags", configs, axes))
    assert [cell.config.run_id for cell in grid.cells()] == [c.run_id for c in configs]
    assert grid.axes["method"] == [{"name": "greedy"}, {"name": "sgrs", "top_k": 4}]


def test_method_args_no_listed_method_takes_are_one_line_errors(capsys):
    assert main(["run", "--model", "llava15", "--methods", "greedy,beam", "--method-args", "alpha=0.3",
                 "--benchmarks", "pope=x"]) == 2
    err = capsys.readouterr().err
    assert "--method-args" in err and "alpha" in err and len(err.strip().splitlines()) == 1


def test_bad_model_args_name_the_flag(capsys):
    assert main(["run", "--model", "llava15", "--model-args", "checkpoint", "--benchmarks", "pope=x"]) == 2
    assert "--model-args" in capsys.readouterr().err


def _pope_rows(n: int, correct: int, error_at: int | None = None) -> list[dict]:
    rows = []
    for i in range(n):
        label = "yes" if i % 2 else "no"
        answer = label if i < correct else ("no" if label == "yes" else "yes")
        row = {"run_id": "r", "sample_id": f"pope-{i:04d}", "benchmark": "pope", "model": "m", "method": "greedy",
               "prompt": f"Is there a thing {i}?", "metadata": json.dumps({"question_id": i, "label": label}),
               "output_text": answer}
        if i == error_at:
            row.update(output_text=None, error="CUDA OOM")
        rows.append(row)
    return rows


def test_bootstrap_standard_error_matches_the_binomial_formula():
    result = evaluate("pope", to_table(_pope_rows(400, correct=300)), ScoringContext(Path("."), Path(".")))
    output = result.output
    assert output["accuracy"] == pytest.approx(0.75)
    assert output["higher_is_better"]["accuracy"] is True and output["primary"] == "f1"
    assert output["stderr"]["accuracy"] == pytest.approx(math.sqrt(0.75 * 0.25 / 400), rel=0.2)


def test_mme_resamples_the_two_questions_of_an_image_together():
    from eval.api import Metric
    from eval.metrics import mme

    outcomes = [mme.sample_outcome({"output_text": answer}, {"task": "existence", "image": f"{i // 2}.jpg",
                                                             "question": "q", "gt": "Yes"})
                for i, answer in enumerate(["yes", "yes", "no", "yes"] * 10)]
    metric = Metric(name="mme", description="", per_sample=lambda rows, context: [], aggregate=mme.aggregate,
                    higher_is_better={"total": True}, cluster="pair", bootstrap_resamples=50)
    stderr = bootstrap_stderr(metric, outcomes)  # an odd task would raise in score_task
    assert stderr["total"] is not None and stderr["total"] > 0


def _write_run(root: Path, run_id: str, rows: list[dict], method: str = "greedy") -> Path:
    """A scored POPE run folder as `halleval run` leaves it, scored in-process."""
    run_dir = root / run_id
    (run_dir / GENERATIONS_DIR).mkdir(parents=True)
    pq.write_table(to_table(rows), run_dir / GENERATIONS_DIR / "part-0.parquet")
    result = evaluate("pope", to_table(rows), ScoringContext(run_dir, run_dir))
    pq.write_table(samples_table({"pope": result}), run_dir / SAMPLES_FILE)
    scores = {"run_id": run_id, "config_hash": "0" * 64, "model": "llava15", "checkpoint": "tiny",
              "method": method, "benchmark": "pope", "benchmark_version": "1", "n_samples": len(rows),
              "n_errors": sum(r.get("error") is not None for r in rows), "metrics": {"pope": result.output}}
    (run_dir / SCORES_FILE).write_text(json.dumps(scores))
    return run_dir


def test_samples_parquet_joins_with_the_generations_and_keeps_error_rows(tmp_path):
    run_dir = _write_run(tmp_path, "pope-run", _pope_rows(6, correct=4, error_at=5))
    samples = pq.read_table(run_dir / SAMPLES_FILE).to_pylist()
    assert [s["sample_id"] for s in samples] == [f"pope-{i:04d}" for i in range(6)]
    assert samples[0] == {"sample_id": "pope-0000", "pope.question_id": 0, "pope.label": "no",
                          "pope.pred": "no", "pope.correct": True}
    assert samples[4]["pope.correct"] is False
    assert samples[5]["pope.pred"] is None and samples[5]["pope.correct"] is None  # unanswered, not "yes"


def test_pope_report_shows_label_and_prediction_in_sample_id_order_and_no_chair(tmp_path):
    rows = _pope_rows(12, correct=8)
    run_dir = _write_run(tmp_path, "pope-run", list(reversed(rows)))
    markdown = render_markdown(run_dir)
    assert "pope.label" in markdown and "pope.pred" in markdown and "pope.correct" in markdown
    listed = [line.split(" | ")[0].strip("| ") for line in markdown.splitlines() if line.startswith("| pope-0")]
    assert listed == sorted(listed) and len(listed) == 10
    page = render_html(run_dir)
    assert "Saliency" not in page and "CHAIR" not in page and "Example captions" not in page
    assert "± " not in page and "stderr" in page and "↑" in page


def test_leaderboard_marks_the_best_with_intervals_and_links(tmp_path):
    _write_run(tmp_path / "runs", "pope-a", _pope_rows(40, correct=20))
    _write_run(tmp_path / "runs", "pope-b", _pope_rows(40, correct=36), method="sgrs")
    assert main(["report", str(tmp_path / "runs")]) == 0
    markdown = (tmp_path / "runs" / "leaderboard.md").read_text()
    best = next(line for line in markdown.splitlines() if line.startswith("| llava15 (tiny) | sgrs |"))
    assert "★" in best and "(pope-b/report.html)" in best and " ± " in best
    assert "★" not in next(line for line in markdown.splitlines() if line.startswith("| llava15 (tiny) | greedy |"))
    assert "pope f1 ↑" in markdown
    assert main(["compare", str(tmp_path / "runs" / "pope-a"), str(tmp_path / "runs"), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "leaderboard.html").read_text().count('href="../runs/pope-a/report.html"') >= 1
    assert find_runs([tmp_path / "runs"]) == [tmp_path / "runs" / "pope-a", tmp_path / "runs" / "pope-b"]
    with pytest.raises(FileNotFoundError, match="holds none"):
        find_runs([tmp_path])


def test_progress_counts_committed_samples_and_errors(tmp_path):
    folder = tmp_path / GENERATIONS_DIR
    folder.mkdir()
    pq.write_table(to_table(_pope_rows(3, correct=3)), folder / "part-old.parquet")  # resumed: not counted
    now = [0.0]
    stream = io.StringIO()
    progress = Progress({"run": 10}, {"run": folder}, stream=stream, clock=lambda: now[0])
    rows = _pope_rows(4, correct=4, error_at=2)
    pq.write_table(to_table(rows), folder / "part-new.parquet")
    now[0] = 20.0
    progress.poll()
    line = stream.getvalue().strip()
    assert line == "generating: 4/10 samples (40%), 0.20 samples/s, elapsed 20s, ETA 30s, errors 1"


def test_runs_are_tracked_in_a_local_mlflow_store_once(tmp_path):
    from mlflow.tracking import MlflowClient

    from jobs.tracking import track_runs

    run_dir = _write_run(tmp_path / "runs", "pope-a", _pope_rows(20, correct=15))
    (run_dir / "config.yaml").write_text("model: {name: llava15, checkpoint: tiny}\nmethod: {name: greedy}\n")
    store = tmp_path / "mlruns"
    assert main(["track", str(tmp_path / "runs"), "--to", f"mlflow:{store}"]) == 0
    first = track_runs(f"mlflow:{store}", [run_dir])  # again: the same MLflow run, updated
    client = MlflowClient(store.resolve().as_uri())
    runs = client.search_runs([client.get_experiment_by_name("halleval").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == first[0]
    data = runs[0].data
    assert data.metrics["pope.accuracy"] == pytest.approx(0.75) and data.metrics["pope.accuracy.stderr"] > 0
    assert data.params["model.name"] == "llava15" and data.tags["halleval.run_id"] == "pope-a"
    artifacts = {item.path for item in client.list_artifacts(first[0])}
    assert {"scores.json", "samples.parquet", "config.yaml"} <= artifacts
    assert main(["track", str(run_dir), "--to", "wandb:x"]) == 2


def test_report_names_the_grid_file_as_the_grid_job_writes_it():
    import jobs.grid
    import jobs.report

    assert jobs.report.GRID_FILE == jobs.grid.GRID_FILE


@pytest.mark.slow
def test_demo_console_shows_halleval_progress_not_ray_logs(tmp_path):
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HALLEVAL_VERBOSE", None)
    result = subprocess.run([sys.executable, "-m", "jobs.cli", "demo", "--out", str(tmp_path), "--images", "2"],
                            capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    console = result.stdout + result.stderr
    assert "generating: 2/2 samples (100%)" in console and "errors 0" in console
    for ray_log in ("Total Progress", "streaming_executor", "logging_progress", "Token authentication"):
        assert ray_log not in console
    assert "↓" in result.stdout and "± " in result.stdout  # directions and standard errors in the table
