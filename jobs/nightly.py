"""`halleval nightly SUITE.yaml --baseline LEDGER [--update-baseline]`: the regression job.

Runs the suite as a grid (shared model actors, skip/resume) in a folder of its own per night,
<output_dir>/nightly/<date>-<commit>/, so every night generates afresh with the code of that
commit and a re-started night resumes. Each headline score with a direction is compared with
the cell's latest ledger entry (same config hash): the difference, its 95% CI from a paired
bootstrap over the shared samples, and the tolerance. A score regresses when it is worse than
the baseline by more than its tolerance and the CI excludes zero on the worse side (scores
without per-sample vectors are judged on the difference alone). Any regression exits 1.

The ledger (Parquet) holds one row per night x cell x metric: date, git commit, suite, run id,
config hash, model, method, benchmark, metric, the headline scores and the per-sample vectors
(JSON), so the next night can pair with it and the report can plot every score over time.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from eval.api import METRICS
from eval.html.nightly import write_nightly_report
from eval.report import headline_scores
from eval.scoring import load_scores
from jobs.grid import run_grid
from jobs.grid_config import load_grid
from jobs.nightly_stats import paired_bootstrap, sample_vectors
from jobs.run import git_commit
from jobs.suite_config import SuiteConfig

LEDGER_SCHEMA = pa.schema([
    ("date", pa.string()), ("git_commit", pa.string()), ("suite", pa.string()),
    ("run_id", pa.string()), ("config_hash", pa.string()), ("model", pa.string()),
    ("method", pa.string()), ("benchmark", pa.string()), ("metric", pa.string()),
    ("scores", pa.string()),  # JSON: headline scores of the metric
    ("samples", pa.string()),  # JSON: {"keys", "columns"} for the paired bootstrap, or null
])


@dataclass
class Comparison:
    """One score of one cell against its baseline."""

    run_id: str
    metric: str
    score: str
    old: float
    new: float
    diff: float
    ci_low: float | None
    ci_high: float | None
    tolerance: float
    regressed: bool

    def message(self) -> str:
        ci = "no CI" if self.ci_low is None else f"95% CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}]"
        return (f"{self.metric}.{self.score} ({self.run_id}): old {self.old:.4f} -> new {self.new:.4f}, "
                f"diff {self.diff:+.4f}, {ci}, tolerance {self.tolerance:.4f}")


def read_ledger(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist() if path.is_file() else []


def append_ledger(path: Path, rows: list[dict[str, Any]]) -> None:
    """Appends rows; the file is replaced atomically, so a crash never leaves half a ledger."""
    table = pa.Table.from_pylist(read_ledger(path) + rows, schema=LEDGER_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def ledger_rows(suite: SuiteConfig, configs, date: str, commit: str | None) -> list[dict[str, Any]]:
    """This night's entries: one per cell x metric."""
    rows = []
    for config in configs:
        scores = load_scores(config.run_dir)
        for metric, output in scores["metrics"].items():
            vectors = sample_vectors(metric, output)
            rows.append({
                "date": date, "git_commit": commit, "suite": suite.name, "run_id": config.run_id,
                "config_hash": config.config_hash, "model": config.model.name, "method": config.method.name,
                "benchmark": config.benchmark.name, "metric": metric,
                "scores": json.dumps(headline_scores(output)),
                "samples": json.dumps(vectors) if vectors else None,
            })
    return rows


def compare(suite: SuiteConfig, new_rows: list[dict[str, Any]], ledger: list[dict[str, Any]]) -> tuple[list[Comparison], list[str]]:
    """Comparisons of every directed score with the latest ledger entry of its cell and metric.

    Returns:
        The comparisons, and the run ids of cells without a baseline.
    """
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in ledger:  # the ledger is in append order: later rows win
        latest[row["config_hash"], row["metric"]] = row
    comparisons, missing = [], []
    for row in new_rows:
        baseline = latest.get((row["config_hash"], row["metric"]))
        if baseline is None:
            missing.append(f"{row['run_id']} ({row['metric']})")
            continue
        old_scores, new_scores = json.loads(baseline["scores"]), json.loads(row["scores"])
        old_samples = json.loads(baseline["samples"]) if baseline["samples"] else None
        new_samples = json.loads(row["samples"]) if row["samples"] else None
        for score, higher_is_better in METRICS.get(row["metric"]).higher_is_better.items():
            old, new = old_scores.get(score), new_scores.get(score)
            if old is None or new is None:
                continue
            ci = None
            if old_samples and new_samples:
                ci = paired_bootstrap(row["metric"], score, old_samples, new_samples, suite.resamples, suite.seed)
            tolerance = suite.tolerance(row["metric"], score)
            sign = 1 if higher_is_better else -1
            worse_beyond = sign * (new - old) < -tolerance
            significant = ci is None or (ci[1] < 0 if higher_is_better else ci[0] > 0)
            comparisons.append(Comparison(
                row["run_id"], row["metric"], score, old, new, new - old,
                ci[0] if ci else None, ci[1] if ci else None, tolerance, worse_beyond and significant,
            ))
    return comparisons, missing


def run_nightly(suite: SuiteConfig, ledger: Path, update: bool, source: str = "suite", log=print) -> list[Comparison]:
    """Runs the suite, compares with the ledger, writes the nightly report, optionally records."""
    now = datetime.now(timezone.utc)
    commit = git_commit()
    night = suite.output_dir / "nightly" / f"{now:%Y%m%d}-{(commit or 'nogit')[:8]}"
    result = run_grid(suite, source=source, overrides=[f"output_dir={json.dumps(str(night))}"], log=log)
    rows = ledger_rows(suite, [c.config for c in result.cells], now.isoformat(timespec="seconds"), commit)
    history = read_ledger(ledger)
    comparisons, missing = compare(suite, rows, history)
    for entry in missing:
        log(f"no baseline for {entry} in {ledger}")
    write_nightly_report(result.grid_dir, suite.name, [asdict(c) for c in comparisons], history + rows)
    if update:
        append_ledger(ledger, rows)
        log(f"recorded {len(rows)} entries in {ledger}")
    return comparisons


def _handle(args: argparse.Namespace) -> int:
    suite = load_grid(args.suite, SuiteConfig)
    comparisons = run_nightly(suite, Path(args.baseline), args.update_baseline, source=args.suite)
    regressions = [c for c in comparisons if c.regressed]
    for comparison in comparisons:
        print(("REGRESSION " if comparison.regressed else "ok ") + comparison.message())
    if regressions:
        print(f"\n{len(regressions)} score(s) regressed beyond tolerance", flush=True)
        return 1
    print(f"\nno regression ({len(comparisons)} scores compared)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "nightly",
        help="run the regression suite and compare it with the baseline ledger",
        description="Run SUITE.yaml (a grid of model x method x benchmark) in a fresh folder per "
        "night, compare every score with the ledger's latest entry by a paired bootstrap (95% CI), "
        "write a report, and exit 1 when a score regresses beyond its tolerance.",
    )
    parser.add_argument("suite", help="suite YAML, e.g. configs/suites/nightly.yaml")
    parser.add_argument("--baseline", required=True, metavar="LEDGER", help="ledger Parquet file (history)")
    parser.add_argument("--update-baseline", action="store_true", help="append tonight's results to the ledger")
    parser.set_defaults(handler=_handle)
