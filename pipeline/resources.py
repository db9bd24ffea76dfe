"""Checks a model group's resource request against the Ray cluster before its pipeline starts.

A pipeline needs, at the same time, `num_actors` inference actors (each `cpus_per_actor` CPUs
and `gpus_per_actor` GPUs, on one node), `input_workers` CPU workers (INPUT_WORKER_CPUS each)
that feed them, and room for a write task (WRITE_CPUS) beside them. Ray queues what does not fit
and waits for it forever, so a request the cluster can never hold (4 actors x 0.5 CPU plus an
input worker on 2 CPUs; a GPU actor on a cluster without GPUs) would hang with no rows and no
message; without room for a write task, every output block would wait in the object store
until the actors finish. This check places the actors, the input workers and a write task on
the cluster's alive nodes (first fit, largest first) and fails in seconds with one line when
they do not fit.

On a cluster with an autoscaler that adds nodes on demand, set `resources.wait_for_resources_s`:
the check then logs what is missing and polls the cluster every few seconds until the request
fits or the time is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import ray

from pipeline.config import ConfigError, RunConfig

INPUT_WORKER_CPUS = 0.25  # each input worker of pipeline.run._run_pipeline (pipeline.inference.InputStage)
WRITE_CPUS = 0.25  # each write task (pipeline.sink); Ray Data's default of 1 CPU starves on 1-CPU nodes
POLL_S = 5.0


class ResourcesError(ConfigError):
    """The cluster cannot hold the run's actors and reader; the message names the resources.* keys
    and what is missing (a ConfigError, so the command line prints it on one line)."""


def _nodes() -> list[dict[str, float]]:
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def _fits(nodes: list[dict[str, float]], actors: int, cpus: float, gpus: float, input_workers: int) -> bool:
    free = [{"CPU": n.get("CPU", 0.0), "GPU": n.get("GPU", 0.0)} for n in nodes]
    demands = [(cpus, gpus)] * actors + [(INPUT_WORKER_CPUS, 0.0)] * input_workers + [(WRITE_CPUS, 0.0)]
    for cpu, gpu in sorted(demands, key=lambda d: (d[1], d[0]), reverse=True):
        for node in free:
            if node["CPU"] + 1e-9 >= cpu and node["GPU"] + 1e-9 >= gpu:
                node["CPU"] -= cpu
                node["GPU"] -= gpu
                break
        else:
            return False
    return True


def pool_sizes(configs: Sequence[RunConfig]) -> tuple[int, int]:
    """(inference actors, input workers) of one model group's pipeline: the largest each run
    asks for (pool sizes change no output)."""
    return max(c.resources.num_actors for c in configs), max(c.resources.input_workers for c in configs)


def shortfall(configs: Sequence[RunConfig], nodes: list[dict[str, float]]) -> str | None:
    """What the cluster lacks for one model group's pipeline, or None when it fits."""
    resources = configs[0].resources
    actors, input_workers = pool_sizes(configs)
    cpus, gpus = resources.cpus_per_actor, resources.gpus_per_actor
    if _fits(nodes, actors, cpus, gpus, input_workers):
        return None
    total_cpus = sum(n.get("CPU", 0.0) for n in nodes)
    total_gpus = sum(n.get("GPU", 0.0) for n in nodes)
    cluster = f"the Ray cluster has {len(nodes)} node(s), {total_cpus:g} CPUs and {total_gpus:g} GPUs"
    if gpus > 0 and not any(n.get("GPU", 0.0) >= gpus for n in nodes):
        return (f"resources.gpus_per_actor={gpus:g} but no node has {gpus:g} GPU(s) ({cluster}); set "
                "resources.gpus_per_actor: 0 to run on CPU, or attach to a GPU cluster (RAY_ADDRESS)")
    return (f"resources ask for {actors} actor(s) x ({cpus:g} CPU, {gpus:g} GPU) plus {input_workers} input "
            f"worker(s) x {INPUT_WORKER_CPUS:g} CPU and {WRITE_CPUS:g} CPU for a write task, which never fit "
            f"({cluster}); lower resources.num_actors, resources.cpus_per_actor or resources.input_workers")


def check_resources(configs: Sequence[RunConfig], log: Callable[[str], None] = print) -> None:
    """Fails (or waits, with `resources.wait_for_resources_s`) when the group cannot be placed.

    Raises:
        ResourcesError: the request does not fit, and no wait was asked for or it ran out.
    """
    wait_s = configs[0].resources.wait_for_resources_s
    deadline = time.monotonic() + wait_s
    announced = 0.0
    while (missing := shortfall(configs, _nodes())) is not None:
        now = time.monotonic()
        if now >= deadline:
            waited = f" after waiting {wait_s:g}s for the autoscaler" if wait_s else ""
            raise ResourcesError(missing + waited)
        if now - announced >= 30 or not announced:
            log(f"waiting up to {deadline - now:.0f}s more for the cluster to grow: {missing}")
            announced = now
        time.sleep(min(POLL_S, max(deadline - now, 0.0)))
