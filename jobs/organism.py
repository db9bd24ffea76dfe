"""`halleval organism train|card|claims` and the method comparison the demo prints.

- `halleval organism train --out DIR`: trains the model organism (pipeline.organism.train) and
  saves model, processor and a card without figures; `--check` compares the weights hash with
  the shipped card's (same settings give the same hash on CPU at one thread).
- `halleval organism card [--checkpoint DIR]`: measures the held-out figures with halleval's own
  pipeline (greedy on CHAIR and POPE through Ray, halleval's scorers) and writes them into
  the card.
- `halleval organism claims RUN...`: the claims report (eval.claims) of runs with saliency.

`compare_methods` runs several methods on the organism's held-out CHAIR and POPE sets and
returns one row per method: CHAIR_s, CHAIR_i, recall, planted rate, POPE F1, seconds per sample.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from jobs.run import check_scoring, execute, ray_session
from pipeline.config import RunConfig, build_config, load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ORGANISM_CONFIG = CONFIGS / "organism.yaml"
TABLE1_GRID = CONFIGS / "grids" / "table1.yaml"
# Table 1's methods (configs/grids/table1.yaml) plus sampling and SGRS alone, the paper's methods
# without LocoRE; the organism has no MME set, so its Table 1 is CHAIR and POPE.
DEMO_METHODS = ("greedy", "sample", "beam", "vcd", "opera", "dola", "locore", "sgrs", "sgrs+locore")
POPE_SPLIT = "adversarial"  # its "no" question on a trigger image asks about the partner
TABLE_COLUMNS = (
    ("method", "method"), ("CHAIR_s ↓", "chair_s"), ("CHAIR_i ↓", "chair_i"), ("recall ↑", "recall"),
    ("planted ↓", "planted_rate"), ("partner recall ↑", "partner_recall"), ("POPE F1 ↑", "pope_f1"),
    ("POPE acc ↑", "pope_accuracy"), ("rejections/caption", "rejections"), ("s/sample", "seconds_per_sample"),
)
"""Columns of the comparison, with the direction of each score (↓ lower is better)."""


def table1_methods() -> dict[str, dict[str, Any]]:
    """The method settings of the paper's Table 1 grid (configs/grids/table1.yaml) by name: the
    organism runs each Table 1 method exactly as that grid does."""
    import yaml

    return {entry["name"]: entry for entry in yaml.safe_load(TABLE1_GRID.read_text())["axes"]["method"]}


def organism_configs(
    method: str, coco_root: Path, pope_root: Path, output_dir: Path, checkpoint: Path,
    overrides: list[str], chair_limit: int | None = None, pope_limit: int | None = None,
) -> tuple[RunConfig, RunConfig]:
    """The CHAIR and POPE run configs of one method on the organism (configs/organism.yaml), with
    Table 1's settings for a Table 1 method and the method's defaults otherwise."""
    from pipeline.config import METHOD_CONFIGS
    from pipeline.organism.model import LOCORE_LAYERS, SALIENCY_LAYERS

    base = load_config(ORGANISM_CONFIG).model_dump(mode="json")
    base["model"]["checkpoint"] = str(checkpoint)
    # Each method takes its own parameters: the organism's layers go to the methods that use them.
    layers = {"target_layers": list(SALIENCY_LAYERS), "locore_layers": list(LOCORE_LAYERS)}
    takes = METHOD_CONFIGS[method].model_fields if method in METHOD_CONFIGS else {}
    base["method"] = {**table1_methods().get(method, {"name": method}),
                      **{key: value for key, value in layers.items() if key in takes}}
    base["output_dir"] = str(output_dir)
    configs = []
    for name, root, subset, limit in (("chair", coco_root, None, chair_limit), ("pope", pope_root, POPE_SPLIT, pope_limit)):
        data = {**base, "benchmark": {"name": name, "root": str(root), "subset": subset, "limit": limit}}
        configs.append(build_config(data, overrides, source=f"organism ({method}, {name})"))
        check_scoring(configs[-1])
    return configs[0], configs[1]


def method_row(method: str, chair: RunConfig, chair_scores: dict[str, Any], pope_scores: dict[str, Any]) -> dict[str, Any]:
    """One row of the comparison: halleval's CHAIR and POPE scores, planted rate, time per sample."""
    import pyarrow.compute as pc

    from eval.organism import planted_rates
    from pipeline.schema import read_generations

    planted = planted_rates(chair.run_dir, chair.benchmark.root)
    table = read_generations(chair.run_dir, columns=["latency_s", "total_rejections"])
    rejections = pc.mean(table.column("total_rejections")).as_py()
    chair_metrics, pope_metrics = chair_scores["metrics"]["chair"], pope_scores["metrics"]["pope"]
    return {
        "method": method,
        "chair_s": chair_metrics["chair_s"], "chair_i": chair_metrics["chair_i"], "recall": chair_metrics["recall"],
        "planted_rate": planted["planted_rate"], "partner_recall": planted["partner_recall"],
        "pope_f1": pope_metrics["f1"], "pope_accuracy": pope_metrics["accuracy"],
        "rejections": rejections,
        "seconds_per_sample": pc.mean(table.column("latency_s")).as_py(),
        "stderr": {  # the scorers' bootstrap standard errors (scores.json), shown as "± se"
            "chair_s": chair_metrics["stderr"].get("chair_s"), "chair_i": chair_metrics["stderr"].get("chair_i"),
            "recall": chair_metrics["stderr"].get("recall"), "pope_f1": pope_metrics["stderr"].get("f1"),
            "pope_accuracy": pope_metrics["stderr"].get("accuracy"),
        },
        "n_captions": chair_metrics["n_captions"], "n_pope": pope_metrics["n"],
        "chair_run": chair_scores["run_id"], "pope_run": pope_scores["run_id"],
    }


def compare_methods(
    methods: tuple[str, ...], coco_root: Path, pope_root: Path, output_dir: Path, checkpoint: Path,
    overrides: list[str] = (), chair_limit: int | None = None, pope_limit: int | None = None, log=print,
) -> list[dict[str, Any]]:
    """Runs each method on the organism's CHAIR and POPE sets (one Ray session); one row per method."""
    pairs = [(m, organism_configs(m, coco_root, pope_root, output_dir, checkpoint, list(overrides),
                                  chair_limit, pope_limit)) for m in methods]
    rows = []
    with ray_session():
        for method, (chair, pope) in pairs:
            log(f"organism: {method} on CHAIR ({chair.benchmark.limit or 'all'} images) and POPE {POPE_SPLIT}")
            quiet = lambda _: None  # noqa: E731 - the per-run lines would bury the table
            rows.append(method_row(method, chair, execute(chair, log=quiet, scratch=True),
                                    execute(pope, log=quiet, scratch=True)))
    return rows


def render_table(rows: list[dict[str, Any]]) -> list[str]:
    """The comparison as a Markdown table (a dash where a figure does not apply)."""
    from eval.html.page import fmt

    lines = ["| " + " | ".join(title for title, _ in TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for row in rows:
        stderr = row.get("stderr", {})
        cells = [row["method"]] + [
            _cell(row[key], key, fmt) + (f" ± {stderr[key]:.3f}" if stderr.get(key) is not None else "")
            for _, key in TABLE_COLUMNS[1:]
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(value: Any, key: str, fmt) -> str:
    if value is None:
        return "-"
    if key == "seconds_per_sample":
        return f"{value:.4f}"
    if key == "rejections":
        return f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, float) else fmt(value)


def _train(args: argparse.Namespace) -> int:
    from pipeline.organism import CHECKPOINT_DIR
    from pipeline.organism.card import build_card, read_card, write_card
    from pipeline.organism.train import TrainSettings, save, train

    settings = TrainSettings(seed=args.seed, steps=args.steps)
    stop_after = args.stop_after
    if args.check:
        shipped = read_card(CHECKPOINT_DIR)["training"]
        settings = TrainSettings(**{**shipped["settings"], "betas": tuple(shipped["settings"]["betas"])})
        stop_after = shipped["steps_done"]
    model, processor, result = train(settings, stop_after=stop_after, max_seconds=args.max_seconds)
    out = Path(args.out)
    save(model, processor, out)
    card = build_card(model, settings, result, out)
    write_card(out, card)
    print(f"trained {result.steps_done} steps in {result.seconds:.0f}s, loss {result.final_loss:.4f}, "
          f"state hash {result.state_hash}; wrote {out}/ (model, processor, card.json)")
    if args.check:
        expected = read_card(CHECKPOINT_DIR)["training"]["state_hash"]
        if result.state_hash != expected:
            print(f"state hash {result.state_hash} differs from the shipped card's {expected}")
            return 1
        print(f"state hash matches the shipped checkpoint ({expected})")
    return 0


def measure_figures(checkpoint: Path, work: Path, log=print) -> dict[str, Any]:
    """Greedy on the held-out CHAIR (all images) and POPE adversarial sets: the card's figures."""
    from pipeline.organism.heldout import write_heldout

    roots = write_heldout(work / "data")
    row = compare_methods(("greedy",), roots.coco_root, roots.pope_root, work / "runs", checkpoint, log=log)[0]
    keep = ("chair_s", "chair_i", "recall", "planted_rate", "partner_recall", "pope_f1", "pope_accuracy",
            "n_captions", "n_pope")
    return {"greedy": {key: row[key] for key in keep}, "pope_split": POPE_SPLIT,
            "measured_by": "halleval organism card (halleval run + CHAIR/POPE scorers)"}


def _card(args: argparse.Namespace) -> int:
    from pipeline.organism import CHECKPOINT_DIR
    from pipeline.organism.card import read_card, write_card

    checkpoint = Path(args.checkpoint or CHECKPOINT_DIR).resolve()
    card = read_card(checkpoint)
    card["figures"] = measure_figures(checkpoint, Path(args.work))
    path = write_card(checkpoint, card)
    print(json.dumps(card["figures"], indent=1))
    print(f"wrote the measured figures into {path}")
    return 0


def _claims(args: argparse.Namespace) -> int:
    from eval.claims import claims, render_claims
    from eval.io import write_result
    from eval.report import benchmark_root

    results = []
    for run in args.runs:
        run_dir = Path(run)
        root = args.coco_annotations or benchmark_root(run_dir)
        if root is None:
            raise FileNotFoundError(f"{run_dir}/config.yaml not found: pass --coco-annotations")
        result = claims(run_dir, root, tagger=args.tagger)
        print(f"\n## {run_dir.name}\n")
        print("\n".join(render_claims(result)))
        results.append(result)
    if args.out:
        write_result(results, args.out)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "organism",
        help="train the model organism, measure its card, check the paper's saliency claims",
        description="The model organism of hallucination (docs/organism.md): a tiny LLaVA trained "
        "here with a planted co-occurrence bias (fork -> knife).",
    )
    commands = parser.add_subparsers(dest="organism_command", metavar="ORGANISM_COMMAND", required=True)
    train = commands.add_parser("train", help="train the organism (deterministic, one CPU thread)")
    train.add_argument("--out", required=True, help="checkpoint folder to write")
    train.add_argument("--steps", type=int, default=1500, help="planned steps of the schedule (default 1500)")
    train.add_argument("--stop-after", type=int, help="stop after this many steps (the schedule keeps --steps)")
    train.add_argument("--max-seconds", type=float, help="stop at the first step past this wall time")
    train.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    train.add_argument("--check", action="store_true",
                       help="retrain with the shipped card's settings and compare the weights hash")
    train.set_defaults(handler=_train)

    card = commands.add_parser("card", help="measure the held-out figures and write them into card.json")
    card.add_argument("--checkpoint", help="organism folder (default: the shipped pipeline/organism/checkpoint)")
    card.add_argument("--work", default="organism_card", help="folder for the held-out sets and runs")
    card.set_defaults(handler=_card)

    claims = commands.add_parser("claims", help="check the paper's saliency findings on runs with saliency")
    claims.add_argument("runs", nargs="+", help="CHAIR run folders that recorded saliency")
    claims.add_argument("--coco-annotations", help="COCO annotations folder (default: from each run's config.yaml)")
    claims.add_argument("--tagger", default="auto", help="CHAIR's POS tagger")
    claims.add_argument("--out", help="write the JSON results here")
    claims.set_defaults(handler=_claims)
