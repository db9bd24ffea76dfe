"""`halleval verify RUN_DIR`: checks that a finished run folder is complete and consistent.

It checks what `halleval run` promises to leave behind: the config, run.json (run id, config
hash, git commit, package versions), manifest.json against the committed Parquet files
(missing, extra or changed files), one row per benchmark sample (no duplicates, no gaps, no
strangers, rows of another run), the benchmark against the fingerprint recorded when the run
started, and scores.json against the generations: its counts, and its metrics against a fresh
re-score of the rows (`--no-rescore` skips that, e.g. when the judge endpoint is unreachable).
Exit code 0 when all is well, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eval.api import ScoringContext
from eval.scoring import SCORES_FILE, score_metric
from jobs.run import RUN_INFO_FILE
from pipeline.benchmarks import BENCHMARKS
from pipeline.config import RunConfig, load_config
from pipeline.fingerprint import FingerprintCheck, read_fingerprint
from pipeline.manifest import MANIFEST_FILE, check_generations, scan_generations
from pipeline.run import iter_samples

CONFIG_FILE = "config.yaml"
_RUN_INFO_KEYS = ("run_id", "config_hash", "git_commit", "packages")


def _read_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        problems.append(f"{path.name} is missing")
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        problems.append(f"{path.name} is not valid JSON ({error})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name} is not a JSON object")
        return None
    return data


def _check_identity(config: RunConfig, run_dir: Path, info: dict[str, Any] | None, problems: list[str]) -> None:
    if run_dir.name != config.run_id:
        problems.append(f"the folder is named {run_dir.name!r} but its config gives run id {config.run_id!r}")
    if info is None:
        return
    for key in _RUN_INFO_KEYS:
        if key not in info:
            problems.append(f"{RUN_INFO_FILE} lacks {key!r}")
    if info.get("run_id") not in (None, config.run_id):
        problems.append(f"{RUN_INFO_FILE} run_id {info['run_id']!r} differs from the config's {config.run_id!r}")
    if info.get("config_hash") not in (None, config.config_hash):
        problems.append(f"{RUN_INFO_FILE} config_hash differs from the hash of {CONFIG_FILE}")


def _check_scores(
    config: RunConfig, run_dir: Path, scores: dict[str, Any], rescore: bool, problems: list[str]
) -> None:
    try:
        _, counts, n_errors = scan_generations(run_dir)
    except (OSError, ValueError):
        return  # check_generations already names the unreadable file
    expected = {"run_id": config.run_id, "config_hash": config.config_hash,
                "n_samples": len(counts), "n_errors": n_errors}
    for key, value in expected.items():
        if scores.get(key) != value:
            problems.append(f"{SCORES_FILE} {key} is {scores.get(key)!r} but the run holds {value!r}")
    scoring = config.scoring.model_dump(mode="json")
    if "scoring" in scores and scores["scoring"] != scoring:
        problems.append(f"{SCORES_FILE} was scored with {scores['scoring']} but the config asks for {scoring}")
    if not scores.get("metrics"):
        problems.append(f"{SCORES_FILE} holds no metrics")
        return
    if not rescore or not counts:
        return
    context = ScoringContext(benchmark_root=Path(config.benchmark.root), run_dir=run_dir,
                             judge=config.scoring.judge, tagger=config.scoring.tagger)
    for metric in BENCHMARKS.get(config.benchmark.name)().metrics:
        recorded = scores["metrics"].get(metric)
        if recorded is None:
            problems.append(f"{SCORES_FILE} lacks metric {metric!r}")
            continue
        fresh = json.loads(json.dumps(score_metric(metric, context).output))  # as scores.json stores it
        difference = first_difference(recorded, fresh)
        if difference is not None:
            problems.append(f"{SCORES_FILE} {metric} differs from a re-score of the rows: {difference}")


def first_difference(recorded: Any, fresh: Any, where: str = "") -> str | None:
    """Where two JSON values first differ ("accuracy: 0.9 recorded, 0.5 re-scored"), or None.

    Floats agree within 1e-9 (relative): a re-score sums in the same order, but JSON rounds.
    """
    label = where or "(top level)"
    if isinstance(recorded, dict) and isinstance(fresh, dict):
        for key in sorted(recorded.keys() | fresh.keys(), key=str):
            if key not in recorded or key not in fresh:
                return f"{where + '.' if where else ''}{key} only {'re-scored' if key in fresh else 'recorded'}"
            found = first_difference(recorded[key], fresh[key], f"{where + '.' if where else ''}{key}")
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(fresh, list):
        if len(recorded) != len(fresh):
            return f"{label}: {len(recorded)} items recorded, {len(fresh)} re-scored"
        for index, (a, b) in enumerate(zip(recorded, fresh)):
            found = first_difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    numbers = (int, float)
    if isinstance(recorded, numbers) and isinstance(fresh, numbers) and not isinstance(recorded, bool):
        if abs(recorded - fresh) <= 1e-9 * max(1.0, abs(recorded), abs(fresh)):
            return None
    elif recorded == fresh:
        return None
    return f"{label}: {recorded!r} recorded, {fresh!r} re-scored"


def verify_run(run_dir: Path, rescore: bool = True) -> list[str]:
    """Every problem found in a run folder, one line each; empty when the run is intact.

    Args:
        rescore: score the rows again and compare with scores.json (judged metrics ask the
            judge, or its cache, again).

    Raises:
        FileNotFoundError: the folder does not exist.
        ConfigError: its config.yaml is missing or invalid (nothing else can be checked).
        BenchmarkError: the benchmark the config names cannot be read.
    """
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a folder; pass a run folder, e.g. runs/<run_id>")
    config = load_config(run_dir / CONFIG_FILE)
    problems: list[str] = []
    info = _read_json(run_dir / RUN_INFO_FILE, problems)
    _check_identity(config, run_dir, info, problems)
    samples, _ = iter_samples(config)
    check = FingerprintCheck(read_fingerprint(run_dir))
    expected_ids = set()
    for sample in samples:
        check.see(sample)
        expected_ids.add(sample.sample_id)
    if check.recorded is None:
        problems.append("benchmark_fingerprint.parquet is missing: the benchmark cannot be checked for edits")
    elif changes := check.differences():
        problems.append(f"the benchmark changed since the run was generated: {changes.describe()}")
    manifest = _read_json(run_dir / MANIFEST_FILE, problems)
    if manifest is not None:
        problems += check_generations(run_dir, manifest, expected_ids, config.run_id)
    scores = _read_json(run_dir / SCORES_FILE, problems)
    if scores is not None:
        _check_scores(config, run_dir, scores, rescore, problems)
    return problems


def _handle(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    problems = verify_run(run_dir, rescore=not args.no_rescore)
    for problem in problems:
        print(f"halleval verify: {run_dir}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{run_dir}: intact")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a run folder: manifest, one row per sample, scores",
        description="Check that a run folder is complete: config, run.json, manifest.json against the "
        "Parquet files, exactly one row per benchmark sample and all of this run, the benchmark "
        "against its recorded fingerprint, scores.json against a re-score of the rows. Exits 1 "
        "and names each problem when something is wrong.",
    )
    parser.add_argument("run_dir", help="a run folder, e.g. runs/chair-llava15-greedy-<hash>")
    parser.add_argument(
        "--no-rescore", action="store_true",
        help="do not score the rows again to compare with scores.json (judged metrics ask the judge again)",
    )
    parser.set_defaults(handler=_handle)

