"""Faults on a real Ray: an inference actor SIGKILLed mid-run, a driver SIGKILLed mid-run.

Either way the finished run holds exactly one row per sample, and after a driver kill the
re-run generates only what no committed file holds and ends equal to an uninterrupted run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil  # Ray's bundled copy: conftest imports ray, which puts it on sys.path
import pytest
import yaml
from conftest import REPO_ROOT, wait_for

from pipeline.config import build_config
from pipeline.manifest import scan_generations
from pipeline.run import generate, load_samples
from pipeline.schema import GENERATIONS_DIR, generation_files, read_generations

pytestmark = pytest.mark.slow

# Columns that depend on the machine's speed, not on what was generated.
_TIMING_COLUMNS = {"latency_s"}


def _pope_config(synth, out: Path) -> dict:
    return {
        "benchmark": {"name": "pope", "root": str(synth.pope_root)},
        "generation": {"max_new_tokens": 8, "batch_size": 1},
        "resources": {"num_actors": 1, "cpus_per_actor": 0.5},
        "output_dir": str(out),
    }


def _map_actor_pids(stage: str = "InferenceStage") -> list[int]:
    """Ray Data's actors of one pipeline stage (InferenceStage or InputStage) started by this
    test session's Ray (descendants of this process)."""
    pids = []
    for process in psutil.Process().children(recursive=True):
        try:
            if f"MapBatches({stage})" in " ".join(process.cmdline()):
                pids.append(process.pid)
        except psutil.Error:  # it exited while we looked
            continue
    return pids


def _rows_by_sample(run_dir: Path) -> dict[str, dict]:
    return {
        row["sample_id"]: {k: v for k, v in row.items() if k not in _TIMING_COLUMNS}
        for row in read_generations(run_dir).to_pylist()
    }


@pytest.mark.parametrize("stage", ["InferenceStage", "InputStage"])
def test_an_inference_actor_or_input_worker_killed_mid_run_leaves_one_row_per_sample(local_ray, synth, tmp_path, stage):
    config = build_config(_pope_config(synth, tmp_path))
    expected = {s.sample_id for s in load_samples(config)[0]}
    folder = config.run_dir / GENERATIONS_DIR
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=generate(config, log=lambda _: None)))
    runner.start()
    try:
        wait_for(lambda: folder.is_dir() and len(generation_files(config.run_dir)) >= 2, "committed files")
        victims = _map_actor_pids(stage)
        assert len(victims) == 1, f"expected one {stage} actor, found {victims}"
        committed_before = len(generation_files(config.run_dir))
        os.kill(victims[0], signal.SIGKILL)
    finally:
        runner.join(timeout=300)
    assert not runner.is_alive() and "summary" in outcome, "the run did not finish after the actor was killed"
    assert not psutil.pid_exists(victims[0]) or psutil.Process(victims[0]).status() == psutil.STATUS_ZOMBIE
    assert committed_before < len(expected), "the kill came after the run had already finished"

    _, counts, n_errors = scan_generations(config.run_dir)  # every committed row, duplicates included
    assert set(counts) == expected
    assert max(counts.values()) == 1, "a sample was committed twice"
    assert n_errors == 0
    assert len(_map_actor_pids(stage)) <= 1  # the restarted actor replaced the dead one


def _halleval_run(config_path: Path, *, new_session: bool) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "run", str(config_path)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, start_new_session=new_session,
    )


def _kill_session(process: subprocess.Popen) -> None:
    """SIGKILLs the driver's process group, then any of its Ray processes that left the group."""
    family = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for child in family:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(family, timeout=30)


def test_a_driver_killed_mid_run_resumes_without_recomputing(local_ray, synth, tmp_path):
    data = _pope_config(synth, tmp_path / "killed")
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(data))
    config = build_config(data)

    driver = _halleval_run(config_path, new_session=True)
    try:
        wait_for(lambda: len(generation_files(config.run_dir)) >= 3 or driver.poll() is not None,
                  "committed files", timeout=180)
    finally:
        _kill_session(driver)
    assert driver.returncode == -signal.SIGKILL, driver.stdout.read()
    _, counts, _ = scan_generations(config.run_dir)
    n_samples = len(load_samples(config)[0])
    assert 0 < len(counts) < n_samples
    # A write the kill cut short is a dot-file; one more stands in for a kill mid-write.
    (config.run_dir / GENERATIONS_DIR / ".part-cut.parquet.1.partial").write_bytes(b"PAR1 cut short")

    rerun = _halleval_run(config_path, new_session=False)
    log, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, log
    generated = re.search(r"\((\d+) generated, (\d+) resumed\)", log)
    assert generated, log
    assert (int(generated[1]), int(generated[2])) == (n_samples - len(counts), len(counts))

    # Same batch size, so even the float columns must match exactly (promise 3 covers batching).
    uninterrupted = build_config(_pope_config(synth, tmp_path / "whole"))
    generate(uninterrupted, log=lambda _: None)
    assert _rows_by_sample(config.run_dir) == _rows_by_sample(uninterrupted.run_dir)
    _, counts, _ = scan_generations(config.run_dir)
    assert len(counts) == n_samples and max(counts.values()) == 1
    assert subprocess.run([sys.executable, "-m", "jobs.cli", "verify", str(config.run_dir)],
                          cwd=REPO_ROOT, capture_output=True, check=False).returncode == 0
