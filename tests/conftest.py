"""Shared fixtures: one local Ray for the session and the synthetic benchmark, written once."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import ray

from pipeline.api import Sample
from pipeline.benchmarks import BENCHMARKS
from pipeline.config import BenchmarkConfig
from pipeline.synth import SyntheticBenchmark, write_synthetic

REPO_ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition, what: str, timeout: float = 120, poll_s: float = 0.05) -> None:
    """Polls `condition()` until it is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout}s")
        time.sleep(poll_s)


def read_benchmark(name: str, root, seed: int = 0, **fields) -> list[Sample]:
    """Every sample a registered reader yields for `root` (BenchmarkConfig `fields` as given)."""
    config = BenchmarkConfig(name=name, root=str(root), **fields)
    return list(BENCHMARKS.get(name)().samples(config, seed))


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> SyntheticBenchmark:
    return write_synthetic(tmp_path_factory.mktemp("synth"), seed=0, n_images=8)


@pytest.fixture(scope="session")
def local_ray():
    """A real local Ray (2 CPUs, small object store), shared by the tests that need one."""
    if not ray.is_initialized():
        ray.init(
            address="local",  # a new Ray even when another (e.g. `ray start`) runs on this machine
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            object_store_memory=300 * 1024 * 1024,
        )
    yield
    ray.shutdown()


def run_scores(metric: str, generations, context) -> dict:
    """A metric's scores of a run's rows, as scores.json holds them, without the entries every
    metric adds (directions, primary score, standard errors), which are checked here."""
    from eval.scoring import evaluate

    output = dict(evaluate(metric, generations, context).output)
    directions = output.pop("higher_is_better")
    assert output.pop("primary") in directions
    assert set(output.pop("stderr")) == set(directions)
    assert output.pop("bootstrap")["resamples"] > 0
    return output
