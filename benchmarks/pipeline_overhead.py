"""Ray Data pipeline overhead: the same tiny-LLaVA generation as a plain loop and through Ray.

Both paths run the same `InferenceStage` on the same 256 synthetic CHAIR samples; the loop
calls it in-process batch by batch, the pipeline runs it on a 1-actor pool and writes Parquet.
Prints the wall times and the ratios pipeline/loop, excluding and including Ray start-up.

    python benchmarks/pipeline_overhead.py [--samples 256] [--max-new-tokens 16]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import ray
import torch

from pipeline.config import build_config
from pipeline.inference import InferenceStage
from pipeline.run import generate, load_samples
from pipeline.synth import write_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        roots = write_synthetic(Path(tmp) / "data", seed=0, n_images=args.samples)
        config = build_config({
            "benchmark": {"name": "chair", "root": str(roots.coco_root), "limit": args.samples},
            "generation": {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size},
            "resources": {"num_actors": 1, "cpus_per_actor": 1},
            "output_dir": str(Path(tmp) / "runs"),
        })
        samples, version = load_samples(config)
        rows = [{**s.to_row(), "run_id": config.run_id} for s in samples]

        # Ray gives a 1-CPU actor OMP_NUM_THREADS=1; the loop gets the same, or it compares threads.
        torch.set_num_threads(1)
        start = time.perf_counter()
        stage = InferenceStage(cells=[(config.model_dump_json(), version)])
        for first in range(0, len(rows), args.batch_size):
            stage(pa.Table.from_pylist(rows[first:first + args.batch_size]))
        loop_s = time.perf_counter() - start

        start = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        ray_start_s = time.perf_counter() - start
        ray.data.DataContext.get_current().enable_progress_bars = False
        summary = generate(config, log=lambda _: None)
        pipeline_s = summary.seconds
        ray.shutdown()

    print(f"samples: {len(rows)}, max_new_tokens: {args.max_new_tokens}, batch size: {args.batch_size}")
    print(f"plain loop (model load + generate):           {loop_s:7.2f} s")
    print(f"Ray start-up:                                 {ray_start_s:7.2f} s")
    print(f"Ray Data pipeline (actor start + gen + write): {pipeline_s:7.2f} s")
    print(f"ratio pipeline / loop, excluding Ray start-up: {pipeline_s / loop_s:.2f}")
    print(f"ratio pipeline / loop, including Ray start-up: {(pipeline_s + ray_start_s) / loop_s:.2f}")


if __name__ == "__main__":
    main()
