"""Scale: the whole generation pipeline on 2,000 synthetic POPE questions, 1 vs 2 actors, on a
local Ray or on a two-node Ray cluster on this machine.

Writes the synthetic benchmark (16 images) and a POPE question file that asks 2,000 questions
about them, then runs `pipeline.run.generate` with the tiny random LLaVA-1.5, once per actor
count, each into a fresh folder. Prints samples/s (wall time of `generate`, actor start-up and
model loading included) and the peak resident memory (RSS) of the driver and of each inference
actor, sampled every 0.1 s. It also checks the output: one row per question, none with an error.

`--cluster two-node` starts a real two-node cluster on loopback: `ray start --head` and a
second `ray start --address` node, one CPU each, every port of their own (free ports picked at
start), in a temporary folder; the driver attaches to it. The script stops exactly the
processes those two commands started (found by that folder, never by name), whatever happens.

Run: `python benchmarks/scale.py [--samples 2000] [--actors 1,2] [--cluster local|two-node]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the package and the tests' node ports

import ray  # first: it puts its bundled psutil (ray/thirdparty_files) on sys.path

# isort: split
import psutil

from jobs.run import ray_session
from pipeline.config import build_config
from pipeline.manifest import scan_generations
from pipeline.run import generate
from pipeline.synth import write_synthetic
from ray_nodes import free_ports

MIB = 1024 * 1024


def write_questions(root: Path, n_samples: int) -> Path:
    """A POPE folder asking `n_samples` questions, cycling over the synthetic POPE questions."""
    synth = write_synthetic(root / "synth", seed=0, n_images=16)
    lines = (synth.pope_root / "coco_pope_random.json").read_text().splitlines()
    questions = [json.loads(line) for line in lines]
    with (synth.pope_root / "coco_pope_random.json").open("w") as handle:
        for number in range(n_samples):
            handle.write(json.dumps({**questions[number % len(questions)], "question_id": number}) + "\n")
    return synth.pope_root


def _node_ports(head: bool) -> list[str]:
    names = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
    if head:
        names.append("--ray-client-server-port")
    return [f"{name}={port}" for name, port in zip(names, free_ports(len(names)))]


def cluster_processes(marker: str) -> list[psutil.Process]:
    """The processes whose command line names `marker` (the cluster's temporary folder)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if marker in " ".join(process.info["cmdline"] or []):
                found.append(process)
    return found


@contextlib.contextmanager
def two_node_cluster() -> Iterator[tuple[str, str]]:
    """A head and a worker node on loopback, one CPU each; yields (address, folder)."""
    folder = tempfile.mkdtemp(prefix="halleval-scale-")
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={folder}"]
    # Ray turns token authentication on when RAY_AUTH_MODE is unset and ~/.ray/auth_token exists;
    # a private loopback cluster needs none, and its nodes and driver must agree.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_ADDRESS": ""}

    def start(*flags: str) -> None:
        # the `ray` of this interpreter's environment, whether or not the venv is on PATH
        ray_cli = str(Path(sys.executable).with_name("ray"))
        done = subprocess.run([ray_cli, "start", *flags], capture_output=True, text=True, env=env, timeout=120)
        if done.returncode:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(f"ray start {flags[0]} failed: {lines[-1] if lines else done.returncode}")

    try:
        start("--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
              *common, *_node_ports(head=True))
        start(f"--address={address}", "--node-ip-address=127.0.0.1", *common, *_node_ports(head=False))
        yield address, folder
    finally:
        for process in cluster_processes(folder):
            with contextlib.suppress(psutil.Error):
                process.terminate()
        deadline = time.monotonic() + 15
        while (left := cluster_processes(folder)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)


class PeakMemory:
    """Samples the RSS of this process and of Ray Data's actors (its descendants, or the
    processes of the cluster named by `cluster_marker`) until stopped."""

    def __init__(self, interval_s: float = 0.1, cluster_marker: str | None = None) -> None:
        self.interval_s = interval_s
        self.cluster_marker = cluster_marker
        self.driver = 0
        self.actors: dict[int, int] = {}  # pid → peak RSS
        self._earlier: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._earlier = set(self._actor_processes())  # a previous pool's actors, still exiting
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _actor_processes(self) -> dict[int, psutil.Process]:
        actors = {}
        candidates = (cluster_processes(self.cluster_marker) if self.cluster_marker
                      else psutil.Process().children(recursive=True))
        for child in candidates:
            try:
                # the inference actors; the input workers are MapWorkers too (MapBatches(InputStage))
                if "MapBatches(InferenceStage)" in " ".join(child.cmdline()):
                    actors[child.pid] = child
            except psutil.Error:  # it exited between the listing and the read
                continue
        return actors

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(self.interval_s):
            self.driver = max(self.driver, me.memory_info().rss)
            for pid, actor in self._actor_processes().items():
                if pid in self._earlier:
                    continue
                try:
                    self.actors[pid] = max(self.actors.get(pid, 0), actor.memory_info().rss)
                except psutil.Error:
                    continue


def run_once(root: Path, out: Path, n_actors: int, batch_size: int, max_new_tokens: int,
             cluster_marker: str | None = None) -> dict:
    config = build_config({
        "benchmark": {"name": "pope", "root": str(root)},
        "generation": {"max_new_tokens": max_new_tokens, "batch_size": batch_size},
        "resources": {"num_actors": n_actors, "cpus_per_actor": 0.5},
        "output_dir": str(out),
    })
    with PeakMemory(cluster_marker=cluster_marker) as memory:
        summary = generate(config, log=lambda _: None)
    _, counts, n_errors = scan_generations(config.run_dir)
    if len(counts) != summary.n_samples or max(counts.values()) != 1 or n_errors:
        raise RuntimeError(f"{config.run_dir}: {len(counts)} samples, {n_errors} errors; expected "
                           f"{summary.n_samples} samples once each")
    return {
        "actors": n_actors,
        "samples": summary.n_samples,
        "seconds": summary.seconds,
        "samples_per_s": summary.n_samples / summary.seconds,
        "driver_peak_mib": memory.driver / MIB,
        "actor_peak_mib": [rss / MIB for rss in memory.actors.values()],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--actors", default="1,2", help="comma-separated actor counts to compare")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--cluster", choices=("local", "two-node"), default="local",
                        help="a local Ray with 2 CPUs, or a two-node cluster (1 CPU each) on loopback")
    args = parser.parse_args(argv)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        marker = None
        if args.cluster == "two-node":
            address, marker = stack.enter_context(two_node_cluster())
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            stack.callback(ray.shutdown)
            nodes = [n for n in ray.nodes() if n["Alive"]]
            where = f"two-node Ray cluster ({len(nodes)} nodes, {ray.cluster_resources()['CPU']:g} CPUs)"
        else:
            stack.enter_context(ray_session(num_cpus=2))
            where = "local Ray with 2 CPUs"
        ray.data.DataContext.get_current().enable_progress_bars = False  # keep the table readable
        root = write_questions(Path(tmp), args.samples)
        print(f"{args.samples} POPE questions, tiny llava15, greedy, batch {args.batch_size}, "
              f"{args.max_new_tokens} new tokens, {where}; load average {os.getloadavg()[0]:.1f}")
        print(f"{'actors':>6} {'seconds':>8} {'samples/s':>10} {'driver MiB':>11}  actor peak MiB")
        results = []
        for n_actors in (int(n) for n in args.actors.split(",")):
            result = run_once(root, Path(tmp) / f"actors-{n_actors}", n_actors, args.batch_size, args.max_new_tokens,
                              marker)
            results.append(result)
            actors = ", ".join(f"{rss:.0f}" for rss in result["actor_peak_mib"])
            print(f"{n_actors:>6} {result['seconds']:>8.1f} {result['samples_per_s']:>10.1f} "
                  f"{result['driver_peak_mib']:>11.0f}  {actors}")
        base = results[0]["samples_per_s"]
        for result in results[1:]:
            print(f"{result['actors']} actors vs {results[0]['actors']}: {result['samples_per_s'] / base:.2f}x samples/s")


if __name__ == "__main__":
    main()
