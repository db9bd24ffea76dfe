"""`halleval run CONFIG`: generate, score and report one run.

Locally it starts an embedded Ray; under `ray job submit` (RAY_ADDRESS is set) it attaches to
the cluster. Re-running the same command resumes: committed samples are not generated again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import ray

from eval.api import ScoringContext
from eval.html.page import fmt
from eval.judges import JUDGES
from eval.report import headline_scores, write_report
from eval.scoring import score_run
from pipeline.benchmarks import BENCHMARKS
from pipeline.config import RunConfig, load_config, write_config
from pipeline.manifest import MANIFEST_FILE, write_manifest
from pipeline.run import generate

RUN_INFO_FILE = "run.json"
_RECORDED_PACKAGES = ("halleval", "torch", "transformers", "ray", "pyarrow", "nltk")


@contextmanager
def ray_session(num_cpus: int | None = None) -> Iterator[None]:
    """Attaches to RAY_ADDRESS when set (a cluster or `ray job submit`), else starts a local Ray.

    An already initialised Ray (a caller's, or a test's) is used as it is and left running.
    """
    if ray.is_initialized():
        yield
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        # "local": start our own Ray even when another one (`ray start`) runs on this machine.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def run_info(config: RunConfig) -> dict[str, Any]:
    """What produced a run: identity, code version and package versions."""
    versions = {}
    for package in _RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "run_id": config.run_id,
        "config_hash": config.config_hash,
        # Every from_pretrained argument, placement ones included (those stay out of the hash).
        "model_args": config.model.args.model_dump(mode="json", exclude_defaults=True),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "packages": versions,
    }


def check_scoring(config: RunConfig) -> None:
    """Fails before any generation when the run could not be scored (an unknown judge kind).

    Raises:
        UnknownNameError: names the judge and its close matches.
    """
    JUDGES.get(config.scoring.judge.split(":", 1)[0])


def execute(config: RunConfig, log=print) -> dict[str, Any]:
    """Generates, scores and reports one run inside the current Ray session; returns the scores.

    Entry points call `check_scoring` first, before they start Ray.
    """
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / MANIFEST_FILE).unlink(missing_ok=True)  # stale once this run adds files
    write_config(config, run_dir / "config.yaml")
    (run_dir / RUN_INFO_FILE).write_text(json.dumps(run_info(config), indent=2))
    summary = generate(config, log=log)
    log(f"generation done in {summary.seconds:.1f}s ({summary.n_generated} generated, {summary.n_resumed} resumed)")
    start = time.perf_counter()
    benchmark = BENCHMARKS.get(config.benchmark.name)()
    identity = {
        "run_id": config.run_id,
        "config_hash": config.config_hash,
        "model": config.model.name,
        "checkpoint": config.model.checkpoint,
        "method": config.method.name,
        "benchmark": config.benchmark.name,
        "benchmark_version": benchmark.version,
    }
    context = ScoringContext(
        benchmark_root=Path(config.benchmark.root), run_dir=run_dir,
        judge=config.scoring.judge, tagger=config.scoring.tagger,
    )
    scores = score_run(context, benchmark.metrics, identity)
    report = write_report(run_dir)
    # Last, so a manifest exists only for a run whose generations and scores are complete.
    write_manifest(run_dir, config.run_id, summary.n_samples)
    log(f"scored in {time.perf_counter() - start:.1f}s; report: {report}")
    return scores


def print_scores(scores: dict[str, Any]) -> None:
    print(f"\n{scores['run_id']}  ({scores['n_samples']} samples, {scores['n_errors']} errors)")
    for metric, output in scores["metrics"].items():
        for key, value in headline_scores(output).items():
            print(f"  {metric:<10} {key:<18} {fmt(value)}")


def _handle(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set or [])
    check_scoring(config)
    with ray_session():
        scores = execute(config)
    print_scores(scores)
    print(f"\nwrote {config.run_dir}/ (generations/, scores.json, report.md)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="generate, score and report one run from a YAML config",
        description="Run one evaluation: generate with the configured model and method on a Ray "
        "actor pool, write Parquet, score it and write a report. Attaches to RAY_ADDRESS when set "
        "(e.g. under `ray job submit`), else starts a local Ray. Re-running resumes.",
    )
    parser.add_argument("config", help="YAML run config, e.g. configs/demo.yaml")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a config key, e.g. --set method.alpha=0.3 (repeatable)",
    )
    parser.set_defaults(handler=_handle)
