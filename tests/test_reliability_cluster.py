"""Distributed faults on a real two-node Ray cluster on this machine: `ray start --head` plus a
worker node (`ray start --address`) with its own resources and ports, on loopback only.

The worker node's raylet is SIGKILLed while an inference actor on it is generating; a new
worker node joins (as an autoscaler would replace a lost node) and the run completes with every
sample exactly once. Every Ray process started here is killed at the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import REPO_ROOT, wait_for
from ray_nodes import free_port

from pipeline.config import build_config
from pipeline.manifest import scan_generations
from pipeline.run import load_samples
from pipeline.schema import generation_files

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _own_ports() -> list[str]:
    """Ports of one node's services: other Rays on this machine hold the defaults."""
    names = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")
    return [f"--{name}={free_port()}" for name in names]


@dataclass
class Cluster:
    env: dict[str, str]
    address: str
    logs: Path
    nodes: dict[str, subprocess.Popen] = field(default_factory=dict)
    seen: set[psutil.Process] = field(default_factory=set)

    def start_node(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.log(name), "w") as log:
            process = subprocess.Popen(
                [str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                 *_own_ports(), *args],
                env=self.env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )
        self.nodes[name] = process
        return process

    def log(self, name: str) -> Path:
        return self.logs / f"ray-{name}.log"

    def join(self, name: str, *args: str, nodes: int, attempts: int = 3) -> None:
        """Starts node `name` and waits until the cluster has `nodes` alive nodes.

        A node whose `ray start` exits before it joins is started again with fresh ports, up to
        `attempts` times: what is under test is the run on the cluster, not Ray's start-up.
        """
        failures = []
        for attempt in range(1, attempts + 1):
            process = self.start_node(name, *args)
            wait_for(lambda: process.poll() is not None or self.alive_nodes() == nodes,
                     f"the {name} node to join (its `ray start` log: {self.log(name)})")
            if process.poll() is None:
                return
            with contextlib.suppress(ProcessLookupError):  # what it started and left behind, holding ports
                os.killpg(process.pid, signal.SIGKILL)
            failed = f"{name}-attempt{attempt}"  # kept for reading
            self.nodes[failed] = self.nodes.pop(name)
            self.log(name).rename(self.log(failed))
            last = self.log(failed).read_text().strip().splitlines()[-1:] or ["no output"]
            failures.append(f"exit {process.returncode}: {last[0]}")
            print(f"`ray start` of the {name} node failed (attempt {attempt}): {failures[-1]}", file=sys.stderr)
        raise RuntimeError(f"the {name} node never joined; `ray start` failed {attempts} times: {failures}")

    def processes(self, name: str) -> list[psutil.Process]:
        """The node's processes (its `ray start` and every descendant), remembered for clean-up."""
        try:
            root = psutil.Process(self.nodes[name].pid)
            found = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self.seen.update(found)
        return found

    def alive_nodes(self) -> int:
        result = subprocess.run([str(BIN / "ray"), "status", "--address", self.address], env=self.env,
                                capture_output=True, text=True, timeout=60, check=False)
        return result.stdout.count("node_") if "Active:" in result.stdout else 0

    def stop(self) -> None:
        for name in self.nodes:
            self.processes(name)
        for process in self.nodes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in list(self.seen):  # those that left the node's process group
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(list(self.seen), timeout=30)
        for process in self.nodes.values():
            process.wait(timeout=30)


@pytest.fixture
def two_nodes(tmp_path) -> Iterator[Cluster]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0",
           # a lost node is declared dead after ~3 s instead of ~30 s
           "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    cluster = Cluster(env=env, address=f"127.0.0.1:{port}", logs=tmp_path)
    # Ray's socket paths live under the temp dir and must stay under 107 characters.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    try:
        # Each node (1 CPU) holds one 0.75-CPU actor, not a second, plus the input worker (0.25)
        # or a write task (0.25).
        cluster.join("head", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                     f"--ray-client-server-port={free_port()}", f"--temp-dir={temp_dir}", nodes=1)
        cluster.join("worker", f"--address={cluster.address}", "--num-cpus=1", nodes=2)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
        leftovers = [p for p in cluster.seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not leftovers, f"Ray processes left running: {leftovers}"


def _map_workers(cluster: Cluster, node: str) -> list[psutil.Process]:
    found = []
    for process in cluster.processes(node):
        try:
            if "MapBatches(InferenceStage)" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_the_worker_nodes_raylet_killed_mid_run_and_every_sample_is_committed_once(two_nodes, synth, tmp_path):
    data = {
        "benchmark": {"name": "pope", "root": str(synth.pope_root)},
        "generation": {"max_new_tokens": 8, "batch_size": 1},
        "resources": {"num_actors": 2, "cpus_per_actor": 0.75},
        "output_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    config = build_config(data)
    expected = {s.sample_id for s in load_samples(config)[0]}
    driver = subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", str(path)], cwd=REPO_ROOT,
                              env={**two_nodes.env, "RAY_ADDRESS": two_nodes.address},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _map_workers(two_nodes, "worker") and len(generation_files(config.run_dir)) >= 2
                  or driver.poll() is not None, "an actor on the worker node and committed files", timeout=240)
        assert driver.poll() is None, driver.stdout.read()
        committed_at_kill = len(generation_files(config.run_dir))
        raylet = next(p for p in two_nodes.processes("worker") if p.name() == "raylet")
        raylet.kill()
        wait_for(lambda: two_nodes.nodes["worker"].poll() is not None or not raylet.is_running(), "the raylet")
        # the lost node is replaced, as an autoscaler would
        two_nodes.start_node("replacement", f"--address={two_nodes.address}", "--num-cpus=1")
        log, _ = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, log[-4000:]
    assert committed_at_kill < len(expected), "the kill came after the run had already finished"
    _, counts, n_errors = scan_generations(config.run_dir)  # every committed row, duplicates included
    assert set(counts) == expected
    assert max(counts.values()) == 1, "a sample was committed twice"
    assert n_errors == 0
    verify = subprocess.run([sys.executable, "-m", "jobs.cli", "verify", str(config.run_dir)], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
