"""Ray Data pipeline overhead: the same tiny-LLaVA generation as a plain loop and through Ray.

Both paths run the same `InferenceStage` on the same synthetic CHAIR samples (256 by default);
the loop calls it in-process batch by batch (decoding each image in the loop), the pipeline
runs `pipeline.run.generate_many` (queue, an input worker that reads, decodes and processes, a 1-actor pool, committed
Parquet). Prints the wall times, the ratios pipeline / loop with and without start-up, and the
actor's busy fraction as the run log reports it (time inside its batches / time from its model
being ready to its last batch; `pipeline.inference.ActorUsage`) with where it idled.

"Past start-up" compares generation alone: the loop without its model load, the pipeline from
the moment its actor's model is ready (so neither Ray's start, nor the actor's process start
and model load, count).

    python benchmarks/pipeline_overhead.py [--samples 256] [--max-new-tokens 16]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402

from pipeline.config import build_config  # noqa: E402
from pipeline.inference import ActorUsage, InferenceStage  # noqa: E402
from pipeline.run import generate_many, load_samples  # noqa: E402
from pipeline.synth import write_synthetic  # noqa: E402


def actor_timings(trace: Path, pipeline_end: float) -> dict[str, float]:
    """From the actor's trace, beside what `ActorUsage` (the run log's figures) takes from it:
    when its model was ready, its batches' sizes and times, and the tail after the last one."""
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    ready = min(r["ready"] for r in records if "ready" in r)
    batches = [r for r in records if "start" in r]
    sizes = [r["rows"] for r in batches]
    return {"ready": ready, "batches": len(batches), "rows_min": min(sizes), "rows_max": max(sizes),
            "median_batch_s": statistics.median(r["end"] - r["start"] for r in batches),
            "first_batches_s": [round(r["end"] - r["start"], 3) for r in batches[:4]],
            "tail_s": pipeline_end - batches[-1]["end"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]

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
        loaded_at = time.perf_counter()
        loop_batches = []
        for first in range(0, len(rows), args.batch_size):
            batch_start = time.perf_counter()
            stage(pa.Table.from_pylist(rows[first:first + args.batch_size]))
            loop_batches.append(time.perf_counter() - batch_start)
        loop_end = time.perf_counter()
        loop_s, loop_gen_s = loop_end - start, loop_end - loaded_at

        start = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        ray_start_s = time.perf_counter() - start
        ray.data.DataContext.get_current().enable_progress_bars = False
        trace = Path(tmp) / "trace.jsonl"
        wall_start = time.time()
        summary = generate_many([config], log=lambda _: None, trace=trace)[0]
        pipeline_end = time.time()
        ray.shutdown()
        actor, usage = actor_timings(trace, pipeline_end), ActorUsage.from_trace(trace)
    pipeline_s = summary.seconds
    past_startup_s = pipeline_end - actor["ready"]

    print(f"samples: {len(rows)}, max_new_tokens: {args.max_new_tokens}, batch size: {args.batch_size}, "
          f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"plain loop (model load + generate):            {loop_s:7.2f} s  (generate alone {loop_gen_s:.2f} s)")
    print(f"Ray start-up:                                  {ray_start_s:7.2f} s")
    print(f"Ray Data pipeline (actor start + gen + write): {pipeline_s:7.2f} s  "
          f"(actor ready after {actor['ready'] - wall_start:.2f} s)")
    print(f"ratio pipeline / loop, excluding Ray start-up: {pipeline_s / loop_s:.2f}")
    print(f"ratio pipeline / loop, including Ray start-up: {(pipeline_s + ray_start_s) / loop_s:.2f}")
    print(f"ratio past start-up (generation alone):        {past_startup_s / loop_gen_s:.2f}")
    print(f"actor busy fraction (as the run log gives it): {usage.busy_fraction:.2f} "
          f"({actor['batches']} batches of "
          f"{actor['rows_min']}-{actor['rows_max']} rows; the loop: batches of {args.batch_size})")
    print(f"actor idle: {usage.before_first_s:.2f} s before its first batch, {usage.between_batches_s:.2f} s between "
          f"batches, {actor['tail_s']:.2f} s from its last batch to the end of generate_many")
    print(f"median batch, actor / loop:                    {actor['median_batch_s'] / statistics.median(loop_batches):.2f} "
          f"({actor['median_batch_s'] * 1e3:.1f} ms vs {statistics.median(loop_batches) * 1e3:.1f} ms; first batches: "
          f"actor {actor['first_batches_s']} s, loop {[round(t, 3) for t in loop_batches[:4]]} s)")


if __name__ == "__main__":
    main()
