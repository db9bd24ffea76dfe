"""`halleval data`: write benchmark data, offline.

- `halleval data synth --out DIR`: the bundled synthetic benchmark, in every real format.
- `halleval data pope --coco DIR --out DIR`: POPE's random/popular/adversarial question files
  built from COCO val2014 instances, as POPE's own `main.py` builds them.
- `halleval data organism --out DIR`: the model organism's held-out CHAIR (COCO) and POPE sets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.benchmarks._coco import read_instances
from pipeline.benchmarks._common import write_jsonl
from pipeline.benchmarks.pope import build_pope
from pipeline.synth import write_synthetic


def _synth(args: argparse.Namespace) -> int:
    roots = write_synthetic(args.out, seed=args.seed, n_images=args.images)
    print(f"wrote the synthetic benchmark (seed {args.seed}) to {args.out}; benchmark roots:")
    for name, root in roots.by_benchmark().items():
        print(f"  {name:<16} {root}")
    return 0


def _pope(args: argparse.Namespace) -> int:
    images = read_instances(Path(args.coco))
    out = Path(args.out)
    for split, questions in build_pope(images, args.seed, args.n_images).items():
        path = out / f"coco_pope_{split}.json"
        write_jsonl(path, questions)
        print(f"wrote {len(questions)} questions to {path}")
    print(
        f"point benchmark.root at {out} and put (or link) the val2014 images in "
        f"{out / 'images'}; see docs/datasets.md"
    )
    return 0


def _organism(args: argparse.Namespace) -> int:
    from pipeline.organism.heldout import write_heldout

    roots = write_heldout(args.out, seed=args.seed)
    print(f"wrote the organism's held-out sets (seed {args.seed}) to {args.out}; benchmark roots:")
    print(f"  chair  {roots.coco_root}\n  pope   {roots.pope_root}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="write benchmark data: the synthetic set, or POPE questions from COCO",
        description="Write benchmark data offline, in the formats the readers expect.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    synth = commands.add_parser(
        "synth",
        help="write the synthetic benchmark (COCO, POPE, MME, VQA and video-QA formats)",
        description="Write a small synthetic benchmark in every real on-disk format the readers "
        "support; the same seed writes the same bytes.",
    )
    synth.add_argument("--out", required=True, help="output folder (created if missing)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--images", type=int, default=16, help="COCO images to draw (default: 16)")
    synth.set_defaults(handler=_synth)

    pope = commands.add_parser(
        "pope",
        help="build POPE's random/popular/adversarial question files from COCO instances",
        description="Sample images with at least 3 annotated objects from "
        "<coco>/annotations/instances_val2014.json and write coco_pope_{random,popular,"
        "adversarial}.json as POPE does (3 present objects and 3 absent ones per image).",
    )
    pope.add_argument(
        "--coco", required=True, help="COCO root holding annotations/instances_val2014.json"
    )
    pope.add_argument("--out", required=True, help="folder for the three question files")
    pope.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    pope.add_argument(
        "--n-images", type=int, default=500, help="images to sample (default: 500, as POPE)"
    )
    pope.set_defaults(handler=_pope)

    organism = commands.add_parser(
        "organism",
        help="write the model organism's held-out CHAIR and POPE sets",
        description="Write the held-out scenes of the model organism (docs/organism.md): 60 regular, "
        "60 trigger (the cue without its partner) and 30 pair scenes as COCO val2014 files with "
        "organism.json (groups), and POPE random/popular/adversarial question files.",
    )
    organism.add_argument("--out", required=True, help="output folder (gets coco/ and pope/)")
    organism.add_argument("--seed", type=int, default=0, help="the organism's seed (default: 0)")
    organism.set_defaults(handler=_organism)
