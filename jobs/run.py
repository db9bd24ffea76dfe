"""`halleval run CONFIG`: generate, score and report one run.

Locally it starts an embedded Ray; under `ray job submit` (RAY_ADDRESS is set) it attaches to
the cluster. Re-running the same command resumes: committed samples are not generated again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from jobs.console import quiet_ray_data, verbose, watch_progress
from pipeline.config import ConfigError, RunConfig, build_config, load_config, parse_override, write_config
from pipeline.producer import changes_since_recorded, git_commit, package_versions

RUN_INFO_FILE = "run.json"
_RECORDED_PACKAGES = ("halleval", "torch", "transformers", "ray", "pyarrow", "nltk")


@contextmanager
def ray_session(num_cpus: int | None = None) -> Iterator[None]:
    """Attaches to RAY_ADDRESS when set (a cluster or `ray job submit`), else starts a local Ray.

    An already initialised Ray (a caller's, or a test's) is used as it is and left running.
    Workers' output and Ray Data's logs stay off the console unless verbose (jobs.console).
    """
    import ray

    quiet_ray_data()
    if ray.is_initialized():
        yield
        return
    address = os.environ.get("RAY_ADDRESS")
    quiet = {"log_to_driver": verbose(), "logging_level": logging.INFO if verbose() else logging.ERROR}
    if address:
        ray.init(address=address, **quiet)
    else:
        # "local": start our own Ray even when another one (`ray start`) runs on this machine.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    try:
        yield
    finally:
        ray.shutdown()


def run_info(config: RunConfig) -> dict[str, Any]:
    """What produced a run: identity, code version and package versions."""
    return {
        "run_id": config.run_id,
        "config_hash": config.config_hash,
        # Every from_pretrained argument, placement ones included (those stay out of the hash).
        "model_args": config.model.args.model_dump(mode="json", exclude_defaults=True),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "packages": package_versions(_RECORDED_PACKAGES),
    }


def check_scoring(config: RunConfig) -> None:
    """Fails before any generation when the run could not be scored (an unknown judge kind).

    Raises:
        UnknownNameError: names the judge and its close matches.
    """
    from eval.judges import JUDGES

    JUDGES.get(config.scoring.judge.split(":", 1)[0])


def check_benchmark(config: RunConfig) -> None:
    """Reads the run's first sample, so a missing or unreadable benchmark folder fails in a
    second, before Ray starts and before any run folder exists.

    Raises:
        BenchmarkError: names the missing or bad file and how to get it.
    """
    from pipeline.api import BenchmarkError
    from pipeline.benchmarks import BENCHMARKS

    if not Path(config.benchmark.root).is_dir():
        raise BenchmarkError(
            f"benchmark folder {config.benchmark.root} ({config.benchmark.name}) does not exist; "
            "set benchmark.root (see docs/datasets.md)"
        )
    samples = BENCHMARKS.get(config.benchmark.name)().samples(config.benchmark, config.seed)
    if next(iter(samples), None) is None:
        raise BenchmarkError(f"{config.benchmark.root}: the {config.benchmark.name} reader found no samples")


def check_runs(configs: list[RunConfig]) -> None:
    """Every check that needs neither Ray nor a model, for all runs before any starts: each
    run's judge, then each distinct benchmark folder once (a grid's cells share a few)."""
    for config in configs:
        check_scoring(config)
    checked: set[tuple[str, str]] = set()
    for config in configs:
        benchmark = (config.benchmark.name, config.benchmark.root)
        if benchmark not in checked:
            check_benchmark(config)
            checked.add(benchmark)


def execute(config: RunConfig, log=print, retry_errors: bool = True, accept_changes: bool = False,
            scratch: bool = False) -> dict[str, Any]:
    """Generates, scores and reports one run inside the current Ray session; returns the scores.

    Holds the run folder's lease throughout (a second driver of the run refuses). Entry points
    call `check_runs` first, before they start Ray.

    Args:
        retry_errors, accept_changes: as `pipeline.run.generate_many`.
        scratch: the folder is the command's own (the demo's, which shows what this code
            generates): rows of another halleval, torch or transformers version are discarded
            and generated afresh, where a user's run refuses (pipeline.producer).
    """
    from eval.api import ScoringContext
    from eval.report import write_report
    from eval.scoring import score_run
    from pipeline.benchmarks import BENCHMARKS
    from pipeline.lease import run_lease
    from pipeline.manifest import MANIFEST_FILE, write_manifest
    from pipeline.run import generate

    run_dir = config.run_dir
    with run_lease(run_dir, log=log):
        if scratch and (changes := changes_since_recorded(run_dir)):
            _empty_run_folder(run_dir)
            log(f"{config.run_id}: generated by another version ({'; '.join(changes)}); generating it afresh")
        (run_dir / MANIFEST_FILE).unlink(missing_ok=True)  # stale once this run adds files
        write_config(config, run_dir / "config.yaml")
        info = run_info(config)
        (run_dir / RUN_INFO_FILE).write_text(json.dumps(info, indent=2))
        summary = generate(config, log=log, retry_errors=retry_errors, accept_changes=accept_changes,
                           progress=watch_progress)
        info["benchmark_fingerprint"] = {"sha256": summary.fingerprint, "n_samples": summary.n_samples}
        (run_dir / RUN_INFO_FILE).write_text(json.dumps(info, indent=2))
        log(f"generation done in {summary.seconds:.1f}s ({summary.n_generated} generated, "
            f"{summary.n_resumed} resumed)")
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
            "scoring": config.scoring.model_dump(mode="json"),  # a grid re-scores when it changes
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


def _empty_run_folder(run_dir: Path) -> None:
    """Removes everything in a run folder but the lease this driver holds on it."""
    from pipeline.lease import LEASE_FILE

    for entry in run_dir.iterdir():
        if entry.name == LEASE_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def arrow(higher_is_better: bool | None) -> str:
    """↑ for a score where higher is better, ↓ for lower, blank when the metric does not say."""
    return {True: "↑", False: "↓"}.get(higher_is_better, " ")


def print_scores(scores: dict[str, Any]) -> None:
    """The run's headline scores, each with its direction and bootstrap standard error."""
    from eval.html.page import fmt
    from eval.report import headline_scores

    print(f"\n{scores['run_id']}  ({scores['n_samples']} samples, {scores['n_errors']} errors)")
    for metric, output in scores["metrics"].items():
        directions, stderr = output.get("higher_is_better", {}), output.get("stderr", {})
        for key, value in headline_scores(output).items():
            error = f"  ± {fmt(stderr[key])}" if stderr.get(key) is not None else ""
            print(f"  {metric:<10} {key:<18} {arrow(directions.get(key))} {fmt(value)}{error}")


def _comma_pairs(text: str | None, flag: str) -> list[tuple[str, Any]]:
    """`a=1,b=x` as [("a", 1), ("b", "x")], values parsed as YAML (as `--set` parses them)."""
    if not text:
        return []
    pairs = []
    for item in text.split(","):
        if "=" not in item:
            raise ConfigError(f"{flag} {text!r}: expected KEY=VALUE[,KEY=VALUE...], e.g. {flag} checkpoint=PATH")
        pairs.append(parse_override(item))
    return pairs


def _benchmarks(text: str, data_root: str | None) -> list[dict[str, Any]]:
    """`pope=/data/pope,chair` as benchmark sections; a bare name is looked for in data_root."""
    sections = []
    for item in text.split(","):
        name, _, root = item.partition("=")
        if not root:
            if data_root is None:
                raise ConfigError(
                    f"--benchmarks: {name!r} has no folder; write {name}=DIR or pass --data-root DIR "
                    f"(then {name} is read from DIR/{name})"
                )
            root = str(Path(data_root) / name)
        sections.append({"name": name.strip(), "root": root})
    return sections


def flag_runs(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The base config and axes that the flags (and an optional CONFIG) describe.

    Returns:
        (base run config dict, axes): whole `method` and `benchmark` sections per axis value,
        so the runs expand like a grid's cells. `--methods` replaces CONFIG's method section.
    """
    base: dict[str, Any] = load_config(args.config).model_dump(mode="json") if args.config else {}
    if args.model:
        base["model"] = {"name": args.model}
    for key, value in _comma_pairs(args.model_args, "--model-args"):
        base.setdefault("model", {})[key] = value
    method_args = dict(_comma_pairs(args.method_args, "--method-args"))
    if args.output_dir:
        base["output_dir"] = args.output_dir
    axes: dict[str, list[Any]] = {}
    if args.methods:
        axes["method"] = _method_sections([name.strip() for name in args.methods.split(",")], method_args)
    else:
        base["method"] = {**base.get("method", {}), **method_args}
    benchmarks = _benchmarks(args.benchmarks, args.data_root) if args.benchmarks else (
        [base.pop("benchmark")] if "benchmark" in base else [])
    if not benchmarks:
        raise ConfigError("name the benchmarks: --benchmarks pope=DIR,chair=DIR (or give a CONFIG file)")
    if args.limit is not None:
        benchmarks = [{**section, "limit": args.limit} for section in benchmarks]
    axes["benchmark"] = benchmarks
    return base, axes


def _method_sections(names: list[str], method_args: dict[str, Any]) -> list[dict[str, Any]]:
    """One method section per name, each with the `--method-args` keys that method takes.

    Each method has its own parameters, so `--methods greedy,sgrs --method-args top_k=4` sets
    SGRS's K and leaves greedy alone; a key no listed method takes is an error naming it.
    """
    from pipeline.config import METHOD_CONFIGS
    from pipeline.methods import METHODS

    for name in names:
        METHODS.validate(name)
    takes = {name: set(METHOD_CONFIGS[name].model_fields) if name in METHOD_CONFIGS else set() for name in names}
    unused = [key for key in method_args if not any(key in keys for keys in takes.values())]
    if unused:
        raise ConfigError(f"--method-args: no method of {', '.join(names)} takes {', '.join(unused)} "
                          "(halleval list methods shows each method's parameters)")
    return [{"name": name, **{k: v for k, v in method_args.items() if k in takes[name]}} for name in names]


def expand(base: dict[str, Any], axes: dict[str, list[Any]], overrides: list[str], source: str) -> list[RunConfig]:
    """The validated run configs of every combination of the axes (first axis slowest)."""
    combinations: list[list[str]] = [[]]
    for key, values in axes.items():
        combinations = [done + [f"{key}={json.dumps(value)}"] for done in combinations for value in values]
    return [build_config(base, [*combination, *overrides], source=source) for combination in combinations]


def write_flag_grid(name: str, configs: list[RunConfig], axes: dict[str, list[Any]]) -> Path:
    """Writes the grid file equivalent to the flags, so `halleval grid FILE` reproduces the runs.

    Its base is the first run's resolved config (every default written out) without the axis
    sections; each axis lists its sections as the runs resolved them (`--set` included), with
    only the keys that differ from the defaults, so the grid's labels stay short.
    """
    resolved: dict[str, list[Any]] = {key: [] for key in axes}
    for config in configs:
        for key, values in resolved.items():
            section = getattr(config, key)
            value = {"name": section.name, **section.model_dump(mode="json", exclude_defaults=True)}
            if value not in values:
                values.append(value)
    base = {key: value for key, value in configs[0].model_dump(mode="json").items() if key not in axes}
    path = Path(configs[0].output_dir) / "grids" / name / "grid.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": name, "base": base, "axes": resolved}, sort_keys=False))
    return path


def _handle(args: argparse.Namespace) -> int:
    overrides = args.set or []
    flags = any(getattr(args, flag) is not None for flag in
                ("model", "model_args", "methods", "method_args", "benchmarks", "limit", "output_dir"))
    if not flags:
        if not args.config:
            raise ConfigError("give a CONFIG file or flags, e.g. halleval run --model llava15 --benchmarks pope=DIR")
        configs = [load_config(args.config, overrides)]
    else:
        base, axes = flag_runs(args)
        configs = expand(base, axes, overrides, source="halleval run flags")
    if args.track:
        from jobs.tracking import tracking_uri

        tracking_uri(args.track)  # a bad target fails now, not after the runs
    check_runs(configs)  # before the imports of Ray and the model stack
    if len(configs) == 1 or not flags:
        with ray_session():
            scores = execute(configs[0], retry_errors=not args.keep_errors, accept_changes=args.accept_changes)
        print_scores(scores)
        print(f"\nwrote {configs[0].run_dir}/ (generations/, scores.json, samples.parquet, report.md)")
    else:
        _handle_many(args, configs, axes)
    if args.track:
        from jobs.tracking import track_runs

        track_runs(args.track, [config.run_dir for config in configs])
        print(f"tracked {len(configs)} runs in {args.track}")
    return 0


def _handle_many(args: argparse.Namespace, configs: list[RunConfig], axes: dict[str, list[Any]]) -> None:
    """Several runs from flags: one grid, so runs of one model share its load on every actor."""
    from eval.leaderboard import write_leaderboard
    from eval.scoring import load_scores
    from jobs.grid import run_grid
    from jobs.grid_config import load_grid

    digest = hashlib.sha256(json.dumps([c.run_id for c in configs]).encode()).hexdigest()[:8]
    name = args.name or f"run-{digest}"
    path = write_flag_grid(name, configs, axes)
    grid = load_grid(path)
    result = run_grid(grid, source=str(path), retry_errors=not args.keep_errors, accept_changes=args.accept_changes)
    for cell in result.cells:
        print_scores(load_scores(cell.config.run_dir))
    write_leaderboard([cell.config.run_dir for cell in result.cells], result.grid_dir)
    print(f"\n{len(result.cells)} runs, {result.n_generated} samples generated in {result.seconds:.0f}s")
    print(f"wrote {result.grid_dir}/: grid.yaml (the same runs as a grid file: halleval grid {path}), "
          "leaderboard.md/.html, grid.md/.html")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="generate, score and report runs from a YAML config or from flags",
        description="Run evaluations: generate with the model and method on a Ray actor pool, "
        "write Parquet, score and report. Give a YAML CONFIG, or flags (several methods and "
        "benchmarks expand to one run each, sharing one model load per actor; the equivalent "
        "grid file is written beside them). Attaches to RAY_ADDRESS when set (e.g. under "
        "`ray job submit`), else starts a local Ray. Re-running resumes.",
        epilog="example: halleval run --model llava15 --model-args checkpoint=llava-hf/llava-1.5-7b-hf,"
        "dtype=bfloat16 --methods greedy,sgrs --benchmarks pope=data/pope,chair=data/coco --limit 50",
    )
    parser.add_argument("config", nargs="?", help="YAML run config, e.g. configs/demo.yaml (optional with flags)")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a config key, e.g. --set method.alpha=0.3 (repeatable)",
    )
    parser.add_argument("--model", help="registered model (`halleval list models`), e.g. llava15")
    parser.add_argument("--model-args", metavar="K=V,...", help="model keys, e.g. checkpoint=PATH,dtype=bfloat16")
    parser.add_argument("--methods", metavar="NAME,...", help="decoding methods, e.g. greedy,sgrs (one run each)")
    parser.add_argument("--method-args", metavar="K=V,...", help="method keys, each given to the listed methods that take it, e.g. alpha=0.3")
    parser.add_argument("--benchmarks", metavar="NAME[=DIR],...",
                        help="benchmarks and their folders, e.g. pope=data/pope,chair=data/coco (one run each)")
    parser.add_argument("--data-root", metavar="DIR", help="folder holding <benchmark>/ for names given without =DIR")
    parser.add_argument("--limit", type=int, help="seeded subset of this many samples per benchmark")
    parser.add_argument("--output-dir", help="runs are written to DIR/<run_id>/ (default: runs)")
    parser.add_argument("--name", help="name of the grid folder several runs share (default: run-<hash>)")
    parser.add_argument("--track", metavar="mlflow:DIR|mlflow:URI",
                        help="also record the runs in MLflow, e.g. mlflow:mlruns (see `halleval track`)")
    add_resume_flags(parser)
    parser.set_defaults(handler=_handle)


def add_resume_flags(parser: argparse.ArgumentParser) -> None:
    """--keep-errors and --accept-changes, shared by the commands that resume runs."""
    parser.add_argument(
        "--keep-errors", action="store_true",
        help="keep committed error rows as they are (by default a re-run generates them again)",
    )
    parser.add_argument(
        "--accept-changes", action="store_true",
        help="the benchmark changed since the run started: regenerate the changed and added samples "
        "and drop the removed ones; the run's rows came from another halleval, torch or transformers "
        "version: keep them (by default the run refuses and names the changes)",
    )
