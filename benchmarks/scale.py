"""Scale: the whole generation pipeline on 2,000 synthetic POPE questions, 1 vs 2 actors.

Writes the synthetic benchmark (16 images) and a POPE question file that asks 2,000 questions
about them, then runs `pipeline.run.generate` with the tiny random LLaVA-1.5 on a local Ray,
once per actor count, each into a fresh folder. Prints samples/s (wall time of `generate`,
actor start-up and model loading included) and the peak resident memory (RSS) of the driver
and of each inference actor, sampled every 0.1 s. It also checks the output: one row per
question, none with an error.

Run: `python benchmarks/scale.py [--samples 2000] [--actors 1,2] [--max-new-tokens 8]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # first: it puts its bundled psutil (ray/thirdparty_files) on sys.path

# isort: split
import psutil

from jobs.run import ray_session
from pipeline.config import build_config
from pipeline.manifest import scan_generations
from pipeline.run import generate
from pipeline.synth import write_synthetic

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


class PeakMemory:
    """Samples the RSS of this process and of Ray Data's actors (its descendants) until stopped."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
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

    @staticmethod
    def _actor_processes() -> dict[int, psutil.Process]:
        actors = {}
        for child in psutil.Process().children(recursive=True):
            try:
                if "MapWorker" in " ".join(child.cmdline()):
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


def run_once(root: Path, out: Path, n_actors: int, batch_size: int, max_new_tokens: int) -> dict:
    config = build_config({
        "benchmark": {"name": "pope", "root": str(root)},
        "generation": {"max_new_tokens": max_new_tokens, "batch_size": batch_size},
        "resources": {"num_actors": n_actors, "cpus_per_actor": 0.5},
        "output_dir": str(out),
    })
    with PeakMemory() as memory:
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
    args = parser.parse_args(argv)
    ray.data.DataContext.get_current().enable_progress_bars = False  # keep the table readable
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, ray_session(num_cpus=2):
        root = write_questions(Path(tmp), args.samples)
        print(f"{args.samples} POPE questions, tiny llava15, greedy, batch {args.batch_size}, "
              f"{args.max_new_tokens} new tokens, local Ray with 2 CPUs")
        print(f"{'actors':>6} {'seconds':>8} {'samples/s':>10} {'driver MiB':>11}  actor peak MiB")
        results = []
        for n_actors in (int(n) for n in args.actors.split(",")):
            result = run_once(root, Path(tmp) / f"actors-{n_actors}", n_actors, args.batch_size, args.max_new_tokens)
            results.append(result)
            actors = ", ".join(f"{rss:.0f}" for rss in result["actor_peak_mib"])
            print(f"{n_actors:>6} {result['seconds']:>8.1f} {result['samples_per_s']:>10.1f} "
                  f"{result['driver_peak_mib']:>11.0f}  {actors}")
        base = results[0]["samples_per_s"]
        for result in results[1:]:
            print(f"{result['actors']} actors vs {results[0]['actors']}: {result['samples_per_s'] / base:.2f}x samples/s")


if __name__ == "__main__":
    main()
