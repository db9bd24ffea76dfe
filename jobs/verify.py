"""`halleval verify RUN_DIR`: checks that a finished run folder is complete and consistent.

It checks what `halleval run` promises to leave behind: the config, run.json (run id, config
hash, git commit, package versions), manifest.json against the committed Parquet files
(missing, extra or changed files), one row per benchmark sample (no duplicates, no gaps, no
strangers) and scores.json against the generations. Exit code 0 when all is well, 1 with one
line per problem otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eval.scoring import SCORES_FILE
from jobs.run import RUN_INFO_FILE
from pipeline.config import RunConfig, load_config
from pipeline.manifest import MANIFEST_FILE, check_generations, scan_generations
from pipeline.run import load_samples

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


def _check_scores(config: RunConfig, run_dir: Path, scores: dict[str, Any], problems: list[str]) -> None:
    try:
        _, counts, n_errors = scan_generations(run_dir)
    except (OSError, ValueError):
        return  # check_generations already names the unreadable file
    expected = {"run_id": config.run_id, "config_hash": config.config_hash,
                "n_samples": len(counts), "n_errors": n_errors}
    for key, value in expected.items():
        if scores.get(key) != value:
            problems.append(f"{SCORES_FILE} {key} is {scores.get(key)!r} but the run holds {value!r}")
    if not scores.get("metrics"):
        problems.append(f"{SCORES_FILE} holds no metrics")


def verify_run(run_dir: Path) -> list[str]:
    """Every problem found in a run folder, one line each; empty when the run is intact.

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
    manifest = _read_json(run_dir / MANIFEST_FILE, problems)
    if manifest is not None:
        samples, _ = load_samples(config)
        problems += check_generations(run_dir, manifest, {s.sample_id for s in samples})
    scores = _read_json(run_dir / SCORES_FILE, problems)
    if scores is not None:
        _check_scores(config, run_dir, scores, problems)
    return problems


def _handle(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    problems = verify_run(run_dir)
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
        "Parquet files, exactly one row per benchmark sample, scores.json against the rows. Exits 1 "
        "and names each problem when something is wrong.",
    )
    parser.add_argument("run_dir", help="a run folder, e.g. runs/chair-llava15-greedy-<hash>")
    parser.set_defaults(handler=_handle)

