"""End to end on a real Ray cluster: `ray start --head` on loopback, then `ray job submit`.

The cluster runs in its own processes (`ray start --block`), so stopping it here leaves any
other Ray of the test session alone.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config
from pipeline.schema import read_generations

from conftest import REPO_ROOT
from ray_nodes import free_port

BIN = Path(sys.executable).parent


def _wait_for_dashboard(url: str, head: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited early with code {head.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:  # answering, only asking for the token
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"Ray dashboard at {url} did not come up in {timeout}s")


@pytest.fixture
def ray_cluster(tmp_path):
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    dashboard_port = free_port()
    head = subprocess.Popen(
        [
            str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            f"--port={free_port()}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
            "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats",
            # Another Ray of the test session holds the default agent ports; without its own,
            # this node's job agent never starts and every submission is refused.
            *(f"--{name}={free_port()}" for name in (
                "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                "metrics-export-port", "ray-client-server-port",
            )),
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "ray-head.log", "w"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard_port}"
    try:
        _wait_for_dashboard(url, head)
        yield url, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


@pytest.mark.slow
def test_ray_job_submit_runs_generates_and_scores(ray_cluster, synth, tmp_path):
    url, env = ray_cluster
    config_path = tmp_path / "job.yaml"
    config_path.write_text(yaml.safe_dump({
        "model": {"name": "llava15", "checkpoint": "tiny"},
        "method": {"name": "greedy"},
        "benchmark": {"name": "chair", "root": str(synth.coco_root)},
        "generation": {"max_new_tokens": 8, "batch_size": 3},
        "resources": {"num_actors": 2, "cpus_per_actor": 0.5},
        "output_dir": str(tmp_path / "runs"),
    }))
    submit = [
        str(BIN / "ray"), "job", "submit", "--address", url, "--working-dir", str(REPO_ROOT),
        "--", "halleval", "run", str(config_path),
    ]
    for _ in range(20):
        result = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=400)
        # The dashboard answers before the node's job agent registers; such a submission is
        # refused outright (no job is created), so submitting again is safe.
        if "No available agent to submit job" not in result.stderr:
            break
        time.sleep(2)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout + result.stderr

    config = load_config(config_path)
    table = read_generations(config.run_dir)
    ids = table.column("sample_id").to_pylist()
    assert sorted(ids) == sorted(f"chair-{i}" for i in _image_ids(synth.coco_root))
    assert len(ids) == len(set(ids))
    assert all(e is None for e in table.column("error").to_pylist())
    scores = json.loads((config.run_dir / "scores.json").read_text())
    assert scores["run_id"] == config.run_id and scores["n_samples"] == 8
    assert 0.0 <= scores["metrics"]["chair"]["chair_s"] <= 1.0
    assert (config.run_dir / "report.md").read_text().startswith(f"# halleval run `{config.run_id}`")


def _image_ids(coco_root: Path) -> list[int]:
    instances = json.loads((coco_root / "annotations" / "instances_val2014.json").read_text())
    return [image["id"] for image in instances["images"]]
