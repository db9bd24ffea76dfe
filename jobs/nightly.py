"""`halleval nightly SUITE.yaml --baseline LEDGER [--update-baseline [--accept]]`: the regression job.

Runs the suite as a grid (shared model actors, skip/resume) in a folder of its own per night,
<output_dir>/nightly/<night>/ (the night is `<date>-<commit>` unless `--night` names it), so
every night generates afresh with the code of that commit and a re-started night resumes. Each
headline score with a direction is compared with the cell's latest ledger entry (same config
hash) of an *earlier* night: the difference, its 95% CI from a paired bootstrap over the shared
samples, and the tolerance. A score regresses when it is worse than the baseline by more than
its tolerance and the CI excludes zero on the worse side (scores without per-sample vectors are
judged on the difference alone). Any regression exits 1.

The baseline only advances on nights that pass: `--update-baseline` records a night with no
regression and refuses one that regresses (unless `--accept` says the change is intended). A
night's own entries never serve as its baseline, so a re-run of a night compares with the same
baseline as its first attempt, and recording it again replaces its entries.

The ledger (Parquet) holds one row per night x cell x metric: night, date, git commit, suite,
run id, config hash, model, method, benchmark, metric, the headline scores and the per-sample
vectors (JSON), so the next night can pair with it and the report can plot every score over time.
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
from jobs.suite_config import SuiteConfig
from pipeline.config import ConfigError
from pipeline.producer import git_commit

LEDGER_SCHEMA = pa.schema([
    ("night", pa.string()),  # the night's folder name; null in ledgers written before it existed
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
    if not path.is_file():
        return []
    return [{"night": None, **row} for row in pq.read_table(path).to_pylist()]


def append_ledger(path: Path, rows: list[dict[str, Any]]) -> None:
    """Appends rows, replacing any earlier entries of the same night; the file is replaced
    atomically, so a crash never leaves half a ledger."""
    nights = {row["night"] for row in rows}
    kept = [row for row in read_ledger(path) if row["night"] is None or row["night"] not in nights]
    table = pa.Table.from_pylist(kept + rows, schema=LEDGER_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def ledger_rows(suite: SuiteConfig, configs, night: str, date: str, commit: str | None) -> list[dict[str, Any]]:
    """This night's entries: one per cell x metric."""
    rows = []
    for config in configs:
        scores = load_scores(config.run_dir)
        for metric, output in scores["metrics"].items():
            vectors = sample_vectors(metric, output)
            rows.append({
                "night": night, "date": date, "git_commit": commit, "suite": suite.name, "run_id": config.run_id,
                "config_hash": config.config_hash, "model": config.model.name, "method": config.method.name,
                "benchmark": config.benchmark.name, "metric": metric,
                "scores": json.dumps(headline_scores(output)),
                "samples": json.dumps(vectors) if vectors else None,
            })
    return rows


def compare(suite: SuiteConfig, new_rows: list[dict[str, Any]], ledger: list[dict[str, Any]]) -> tuple[list[Comparison], list[str]]:
    """Comparisons of every directed score with the latest ledger entry of its cell and metric
    from another night (a night is never its own baseline).

    Returns:
        The comparisons, and the run ids of cells without a baseline.
    """
    tonight = {row["night"] for row in new_rows}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in ledger:  # the ledger is in append order: later rows win
        if row.get("night") is None or row["night"] not in tonight:
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


def night_name(commit: str | None, now: datetime) -> str:
    """The default night: `<UTC date>-<commit[:8]>`, so a re-run of the same commit that day resumes."""
    return f"{now:%Y%m%d}-{(commit or 'nogit')[:8]}"


def run_nightly(
    suite: SuiteConfig, ledger: Path, update: bool, source: str = "suite", log=print,
    night: str | None = None, accept: bool = False,
) -> list[Comparison]:
    """Runs the suite, compares with the ledger, writes the nightly report, optionally records.

    Args:
        update: record the night in the ledger when it passes (or when `accept`).
        night: the night's name (its folder and ledger key); default `night_name`.
        accept: with `update`, record the night even if it regresses (the change is intended).
    """
    now = datetime.now(timezone.utc)
    commit = git_commit()
    night = night or night_name(commit, now)
    folder = suite.output_dir / "nightly" / night
    result = run_grid(suite, source=source, overrides=[f"output_dir={json.dumps(str(folder))}"], log=log)
    rows = ledger_rows(suite, [c.config for c in result.cells], night, now.isoformat(timespec="seconds"), commit)
    history = read_ledger(ledger)
    comparisons, missing = compare(suite, rows, history)
    for entry in missing:
        log(f"no baseline for {entry} in {ledger}")
    write_nightly_report(result.grid_dir, suite.name, [asdict(c) for c in comparisons], history + rows)
    regressions = sum(c.regressed for c in comparisons)
    if update and regressions and not accept:
        log(f"not recorded in {ledger}: night {night} regressed {regressions} score(s), and the baseline "
            "only advances on passing nights; add --accept to record it as the new baseline")
    elif update:
        append_ledger(ledger, rows)
        accepted = f", accepting {regressions} regression(s)" if regressions else ""
        log(f"recorded {len(rows)} entries of night {night} in {ledger}{accepted}")
    return comparisons


def _handle(args: argparse.Namespace) -> int:
    suite = load_grid(args.suite, SuiteConfig)
    if args.accept and not args.update_baseline:
        raise ConfigError("--accept records a regressing night as the baseline; use it with --update-baseline")
    comparisons = run_nightly(suite, Path(args.baseline), args.update_baseline, source=args.suite,
                              night=args.night, accept=args.accept)
    regressions = [c for c in comparisons if c.regressed]
    for comparison in comparisons:
        print(("REGRESSION " if comparison.regressed else "ok ") + comparison.message())
    if regressions and args.accept:
        print(f"\n{len(regressions)} score(s) regressed beyond tolerance; accepted as the new baseline")
        return 0
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
        "night, compare every score with the ledger's latest entry of an earlier night by a paired "
        "bootstrap (95% CI), write a report, and exit 1 when a score regresses beyond its tolerance. "
        "The baseline advances only on passing nights (or with --accept).",
    )
    parser.add_argument("suite", help="suite YAML, e.g. configs/suites/nightly.yaml")
    parser.add_argument("--baseline", required=True, metavar="LEDGER", help="ledger Parquet file (history)")
    parser.add_argument(
        "--update-baseline", action="store_true",
        help="record tonight's results in the ledger if no score regressed (a re-run replaces them)",
    )
    parser.add_argument(
        "--accept", action="store_true",
        help="with --update-baseline: record tonight even if it regressed (an intended change); exits 0",
    )
    parser.add_argument(
        "--night", metavar="NAME",
        help="name of this night (its folder and ledger key), e.g. a CI build id; default <date>-<commit>",
    )
    parser.set_defaults(handler=_handle)
