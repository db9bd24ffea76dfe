"""Experiment tracking: record finished runs in MLflow (`halleval track`, `halleval run --track`).

Each halleval run becomes one MLflow run in the experiment `halleval` (or `--experiment`):

- params: the run's config.yaml, flattened (`model.name`, `method.alpha`, ...);
- metrics: every headline score as `<metric>.<score>` and its bootstrap standard error as
  `<metric>.<score>.stderr`;
- tags: `halleval.run_id`, `halleval.config_hash`, `halleval.git_commit`, model, method,
  benchmark;
- artifacts: scores.json, samples.parquet, report.md, report.html, run.json, config.yaml.

Tracking a run again updates the MLflow run that carries its run id and config hash, so
re-running a command never duplicates it. The target is `mlflow:DIR` (a local file store,
nothing leaves the machine: MLflow's file backend, which MLflow 3 keeps in maintenance mode,
is enabled for it) or `mlflow:URI` for any MLflow tracking URI (`http://...`,
`sqlite:///...`, `databricks`). MLflow is imported only here: `pip install mlflow-skinny`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import ConfigError

DEFAULT_EXPERIMENT = "halleval"
ARTIFACTS = ("scores.json", "samples.parquet", "report.md", "report.html", "run.json", "config.yaml")


def tracking_uri(target: str) -> str:
    """The MLflow tracking URI of a `mlflow:DIR` or `mlflow:URI` target.

    Raises:
        ConfigError: a target that is not `mlflow:...`.
    """
    kind, _, location = target.partition(":")
    if kind != "mlflow" or not location:
        raise ConfigError(f"--track {target!r}: use mlflow:DIR (a local store) or mlflow:URI, e.g. mlflow:mlruns")
    if "://" in location or location == "databricks":
        return location
    return Path(location).resolve().as_uri()


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"name": "x"}} as {"model.name": "x"}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_record(run_dir: Path) -> dict[str, Any]:
    """What is logged for one run folder: params, metrics, tags and artifact paths."""
    from eval.scoring import load_scores

    scores = load_scores(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    metrics: dict[str, float] = {}
    for metric, output in scores["metrics"].items():
        for score in output.get("higher_is_better", {}):
            if isinstance(output.get(score), (int, float)):
                metrics[f"{metric}.{score}"] = float(output[score])
            if isinstance(output.get("stderr", {}).get(score), (int, float)):
                metrics[f"{metric}.{score}.stderr"] = float(output["stderr"][score])
    metrics["n_samples"], metrics["n_errors"] = float(scores["n_samples"]), float(scores["n_errors"])
    tags = {"halleval.run_id": scores["run_id"], "halleval.config_hash": scores["config_hash"],
            "halleval.git_commit": str(info.get("git_commit")), "model": scores["model"],
            "method": scores["method"], "benchmark": scores["benchmark"]}
    params = {key: json.dumps(value) if isinstance(value, (list, tuple)) else value for key, value in flatten(config).items()}
    artifacts = [run_dir / name for name in ARTIFACTS if (run_dir / name).is_file()]
    return {"name": scores["run_id"], "params": params, "metrics": metrics, "tags": tags, "artifacts": artifacts}


def track_runs(target: str, run_dirs: list[Path], experiment: str = DEFAULT_EXPERIMENT) -> list[str]:
    """Logs each run folder to MLflow; returns the MLflow run ids (one per halleval run)."""
    uri = tracking_uri(target)
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("--track mlflow:...: MLflow is not installed; pip install mlflow-skinny") from None

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    ids = []
    for run_dir in run_dirs:
        record = run_record(Path(run_dir))
        tags = record["tags"]
        query = (f"tags.`halleval.run_id` = '{tags['halleval.run_id']}' and "
                 f"tags.`halleval.config_hash` = '{tags['halleval.config_hash']}'")
        existing = client.search_runs([experiment_id], filter_string=query, max_results=1)
        run = existing[0] if existing else client.create_run(experiment_id, tags=tags, run_name=record["name"])
        run_id = run.info.run_id
        for key, value in record["params"].items():
            if not existing:  # MLflow params are immutable; the run id fixes them anyway
                client.log_param(run_id, key, value)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        for key, value in record["metrics"].items():
            client.log_metric(run_id, key, value)
        for path in record["artifacts"]:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)
        ids.append(run_id)
    return ids


def _handle(args: argparse.Namespace) -> int:
    from eval.leaderboard import find_runs

    runs = find_runs([Path(p) for p in args.runs])
    ids = track_runs(args.to, runs, args.experiment)
    print(f"tracked {len(ids)} runs in {tracking_uri(args.to)} (experiment {args.experiment})")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="record scored runs in MLflow (a local store or a tracking server)",
        description="Log scored run folders to MLflow: config as params, headline scores and their "
        "standard errors as metrics, identity as tags, scores/samples/report as artifacts. "
        "Re-tracking a run updates its MLflow run.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders, or folders of run folders")
    parser.add_argument("--to", required=True, metavar="mlflow:DIR|mlflow:URI",
                        help="where: mlflow:mlruns (local file store) or mlflow:http://host:5000")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment (default: halleval)")
    parser.set_defaults(handler=_handle)
