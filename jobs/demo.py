"""`halleval demo`: the model organism through the whole pipeline, the Table 1 methods side by side.

Writes the organism's held-out CHAIR and POPE sets (docs/organism.md), then runs the shipped
organism checkpoint (a tiny LLaVA trained here with a planted fork -> knife bias) with the methods
of the paper's Table 1 grid (configs/grids/table1.yaml) plus sampling and SGRS alone
(`jobs.organism.DEMO_METHODS`) through a real Ray Data actor pool on a local Ray, scores
every run with halleval's CHAIR and POPE scorers, writes Parquet, scores and reports, and ends with
one table: CHAIR_s, CHAIR_i, recall, planted-pair hallucination rate, POPE F1, seconds per
sample. Nothing is downloaded. `--random-model` runs the old random tiny LLaVA on the synthetic
benchmark instead (greedy only), as the unit tests do.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jobs.organism import DEMO_METHODS, POPE_SPLIT, compare_methods, render_table
from jobs.run import check_scoring, execute, print_scores, ray_session
from pipeline.config import build_config, load_config

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
DEMO_CHAIR_IMAGES = 60  # of the 150 held-out images: a seeded subset of all three groups
DEMO_POPE_QUESTIONS = 60


def run_demo(out: Path, methods: tuple[str, ...], chair_images: int | None, pope_questions: int | None,
             overrides: list[str]) -> list[dict]:
    """The organism demo; returns one comparison row per method."""
    from pipeline.organism import CHECKPOINT_DIR
    from pipeline.organism.heldout import write_heldout

    start = time.perf_counter()
    print(f"[1/2] writing the organism's held-out CHAIR and POPE sets to {out / 'data'}")
    roots = write_heldout(out / "data")
    print(f"[2/2] the organism ({CHECKPOINT_DIR.name}/, llava15 adapter) with {', '.join(methods)} on "
          f"CHAIR ({chair_images or 150} images) and POPE {POPE_SPLIT} ({pope_questions or 300} questions), on Ray")
    rows = compare_methods(methods, roots.coco_root, roots.pope_root, out / "runs", CHECKPOINT_DIR, overrides,
                           chair_images, pope_questions)
    print()
    print("\n".join(render_table(rows)))
    print("\nplanted: share of trigger images (a fork, no knife) whose caption names a knife; "
          "s/sample: mean generation time per CHAIR caption")
    print(f"\ndemo finished in {time.perf_counter() - start:.0f}s; outputs under {out}/runs/:")
    for row in rows:
        print(f"  {row['chair_run']}/ and {row['pope_run']}/  generations/*.parquet  scores.json  report.md  report.html")
    return rows


def run_random_demo(out: Path, n_images: int, overrides: list[str]) -> list[dict]:
    """The random tiny LLaVA on the synthetic benchmark: greedy CHAIR and POPE (no signal, fast)."""
    from pipeline.synth import write_synthetic

    start = time.perf_counter()
    print(f"[1/3] writing the synthetic benchmark ({n_images} images) to {out / 'data'}")
    roots = write_synthetic(out / "data", seed=0, n_images=n_images)
    base = load_config(DEMO_CONFIG).model_dump(mode="json")
    base["output_dir"] = str(out / "runs")
    configs = []
    for name, root in (("chair", roots.coco_root), ("pope", roots.pope_root)):
        data = {**base, "benchmark": {**base["benchmark"], "name": name, "root": str(root)}}
        configs.append(build_config(data, overrides, source=f"demo ({name})"))
        check_scoring(configs[-1])
    results = []
    with ray_session():
        for step, config in enumerate(configs, start=2):
            print(f"[{step}/3] {config.benchmark.name}: tiny {config.model.name}, {config.method.name} decoding on Ray")
            results.append(execute(config, scratch=True))
    for scores in results:
        print_scores(scores)
    print(f"\ndemo finished in {time.perf_counter() - start:.0f}s; outputs under {out}/runs/")
    return results


def _handle(args: argparse.Namespace) -> int:
    if args.random_model:
        run_random_demo(Path(args.out), args.images or 16, args.set or [])
        return 0
    methods = tuple(args.methods.split(",")) if args.methods else DEMO_METHODS
    run_demo(Path(args.out), methods, args.images or DEMO_CHAIR_IMAGES, args.pope_questions, args.set or [])
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the model organism with the Table 1 decoding methods through the whole pipeline (no downloads)",
        description="Write the model organism's held-out CHAIR and POPE sets, run the shipped organism "
        "with greedy, sample, beam, vcd, opera, dola, locore, sgrs and sgrs+locore (Table 1's settings, "
        "configs/grids/table1.yaml) through Ray Data on a local Ray, write "
        "Parquet, scores and reports, and print the methods side by side.",
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--images", type=int,
                        help=f"CHAIR images, a seeded subset of the 150 held-out ones (default: {DEMO_CHAIR_IMAGES}; "
                        "with --random-model: synthetic images, default 16)")
    parser.add_argument("--pope-questions", type=int, default=DEMO_POPE_QUESTIONS,
                        help=f"POPE questions, a seeded subset of 300 (default: {DEMO_POPE_QUESTIONS})")
    parser.add_argument("--methods", help=f"comma-separated methods (default: {','.join(DEMO_METHODS)})")
    parser.add_argument("--random-model", action="store_true",
                        help="run the random tiny LLaVA on the synthetic benchmark instead (greedy, no signal)")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a key of every run config, e.g. --set method.alpha=0.3",
    )
    parser.set_defaults(handler=_handle)
