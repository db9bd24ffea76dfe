"""`halleval demo`: the whole pipeline on this machine in well under a minute.

Writes the bundled synthetic benchmark, then runs the tiny random LLaVA-1.5 on its CHAIR and
POPE parts through a real Ray Data actor pool on a local Ray, scores both and writes reports.
Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jobs.run import check_scoring, execute, print_scores, ray_session
from pipeline.config import build_config, load_config
from pipeline.synth import write_synthetic

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def run_demo(out: Path, n_images: int, overrides: list[str]) -> list[dict]:
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
            results.append(execute(config))
    for scores in results:
        print_scores(scores)
    print(f"\ndemo finished in {time.perf_counter() - start:.0f}s; outputs under {out}/runs/:")
    for config in configs:
        print(f"  {config.run_dir}/  generations/*.parquet  scores.json  report.md  report.html  manifest.json")
    return results


def _handle(args: argparse.Namespace) -> int:
    run_demo(Path(args.out), args.images, args.set or [])
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on synthetic data with a tiny model (no downloads)",
        description="Write the synthetic benchmark, run a tiny random LLaVA-1.5 on its CHAIR and "
        "POPE sets through Ray Data on a local Ray, and write Parquet, scores and reports.",
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--images", type=int, default=16, help="synthetic images (default: 16)")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a key of configs/demo.yaml, e.g. --set method.name=sample",
    )
    parser.set_defaults(handler=_handle)
