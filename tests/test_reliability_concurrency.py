"""One owner per run folder: a second driver refuses in one line naming the owner, a dead
owner's lease lets go, and commits never hold a sample twice whatever the batch sizes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
import yaml
from conftest import REPO_ROOT

from pipeline import lease
from pipeline.config import build_config
from pipeline.lease import LEASE_FILE, RunLockedError, acquire, read_lease, release, run_lease
from pipeline.manifest import scan_generations
from pipeline.run import generate, load_samples
from pipeline.schema import GENERATIONS_DIR, generation_files

_HOLDER = """
import sys, time
from pathlib import Path
from pipeline.lease import acquire
acquire(Path(sys.argv[1]), heartbeat_s=0.2)
print("held", flush=True)
time.sleep(60)
"""


def _holder(run_dir: Path) -> subprocess.Popen:
    """Another process that takes the lease and keeps it until killed."""
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_live_owner_refuses_a_second_one_naming_it(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunLockedError) as error:
            acquire(tmp_path)
        message = str(error.value)
        assert "\n" not in message and f"pid {holder.pid} on {socket.gethostname()}" in message
        assert "wait for it to finish" in message
        # its heartbeat moves
        first = read_lease(tmp_path)["heartbeat"]
        time.sleep(0.6)
        assert read_lease(tmp_path)["heartbeat"] > first
    finally:
        holder.kill()
        holder.wait()
    # the owner is dead: its lease lets go at once, on the same host
    lines: list[str] = []
    with run_lease(tmp_path, log=lines.append):
        assert read_lease(tmp_path)["pid"] == os.getpid()
        assert lines and "taking over a stale lease" in lines[0] and f"pid {holder.pid}" in lines[0]
    assert not (tmp_path / LEASE_FILE).exists()


def _remote_lease(run_dir: Path, heartbeat_age_s: float) -> None:
    (run_dir / LEASE_FILE).write_text(json.dumps({
        "token": "remote", "host": "head-node-of-the-cluster", "pid": 4242, "process_started": 0,
        "command": "halleval run job.yaml", "acquired_at": "2026-01-01T00:00:00+00:00",
        "heartbeat": time.time() - heartbeat_age_s,
    }))


def test_a_lease_of_another_host_holds_until_its_heartbeat_is_older_than_the_ttl(tmp_path):
    _remote_lease(tmp_path, heartbeat_age_s=5)
    with pytest.raises(RunLockedError, match="pid 4242 on head-node-of-the-cluster"):
        acquire(tmp_path, ttl_s=60)
    _remote_lease(tmp_path, heartbeat_age_s=61)
    lines: list[str] = []
    acquire(tmp_path, ttl_s=60, log=lines.append)
    try:
        assert "last heartbeat was 61s ago" in lines[0]
        assert read_lease(tmp_path)["host"] == socket.gethostname()
    finally:
        release(tmp_path)


def test_leases_are_reentrant_in_one_process(tmp_path):
    with run_lease(tmp_path):
        token = read_lease(tmp_path)["token"]
        with run_lease([tmp_path, tmp_path / "other"]):
            assert read_lease(tmp_path)["token"] == token
        assert (tmp_path / LEASE_FILE).exists()  # the outer hold is still there
    assert not (tmp_path / LEASE_FILE).exists() and not lease._HELD


def _config_data(synth, out: Path, batch_size: int, max_new_tokens: int = 8) -> dict:
    return {
        "benchmark": {"name": "pope", "root": str(synth.pope_root)},
        "generation": {"max_new_tokens": max_new_tokens, "batch_size": batch_size},
        "resources": {"num_actors": 1, "cpus_per_actor": 0.5},
        "output_dir": str(out),
    }


@pytest.mark.slow
def test_two_drivers_on_one_ray_cluster_the_second_refuses_and_nothing_is_duplicated(local_ray, synth, tmp_path):
    """Both drivers are `halleval run` processes attached to this session's Ray (RAY_ADDRESS)."""
    path = tmp_path / "run.yaml"
    # Long answers keep the first driver generating while the second starts (a few seconds).
    data = _config_data(synth, tmp_path / "runs", batch_size=1, max_new_tokens=48)
    path.write_text(yaml.safe_dump(data))
    config = build_config(data)
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    command = [sys.executable, "-m", "jobs.cli", "run", str(path)]
    first = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while len(generation_files(config.run_dir)) < 1 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, first.stdout.read()
        # another batch size: the same run id, so the same folder
        second = subprocess.run([*command, "--set", "generation.batch_size=3"], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first driver finished before the second started; no overlap"
    finally:
        log, _ = first.communicate(timeout=300)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "Traceback" not in second.stderr and second.stderr.count("\n") == 1, second.stderr
    assert f"is in use by pid {first.pid} on {socket.gethostname()}" in second.stderr
    assert first.returncode == 0, log

    _, counts, n_errors = scan_generations(config.run_dir)
    assert set(counts) == {s.sample_id for s in load_samples(config)[0]}
    assert max(counts.values()) == 1 and n_errors == 0
    assert not (config.run_dir / LEASE_FILE).exists()
    # now free: the other batch size resumes with nothing to generate
    again = subprocess.run([*command, "--set", "generation.batch_size=3"], cwd=REPO_ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "(0 generated," in again.stdout, again.stdout + again.stderr


def test_samples_committed_twice_are_reconciled_to_one_row_on_resume(synth, tmp_path):
    """Files left by two drivers of different batch sizes (before runs had leases): overlapping
    ids under different part names. A re-start keeps one row per sample; no Ray is needed,
    nothing is left to generate."""
    config = build_config(_config_data(synth, tmp_path, batch_size=4))
    ids = sorted(s.sample_id for s in load_samples(config)[0])
    folder = config.run_dir / GENERATIONS_DIR
    folder.mkdir(parents=True)
    from pipeline.schema import to_table

    def rows(chosen):
        return to_table([{"run_id": config.run_id, "sample_id": i, "benchmark": "pope", "model": "llava15",
                          "method": "greedy", "output_text": "yes", "seed": 0} for i in chosen])

    pq.write_table(rows(ids[:30]), folder / "part-a.parquet")  # batch size 1 driver
    pq.write_table(rows(ids[10:]), folder / "part-b.parquet")  # batch size 3 driver, overlapping
    lines: list[str] = []
    summary = generate(config, log=lines.append)
    assert (summary.n_generated, summary.n_resumed) == (0, len(ids))
    assert any("removed 20 duplicate row(s)" in line for line in lines), lines
    _, counts, _ = scan_generations(config.run_dir)
    assert sorted(counts) == ids and max(counts.values()) == 1
