"""Driver memory against the number of samples: peak driver RSS and USS while generating N samples.

For each N, a fresh Python process writes a POPE question file of N questions that repeat the
synthetic images, starts a local Ray and generates every question with tiny LLaVA
(`max_new_tokens=1`, so the run is mostly pipeline). A background thread samples the driver's
resident set size and unique set size (psutil, every 10 ms) during `generate`; USS leaves out
shared pages (object-store memory the driver maps, shared libraries). The table shows the RSS before the
run, the peak during it and the difference. Actors are separate processes and not counted.

    python benchmarks/reader_memory.py [--samples 500 2000 8000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil


def _peak_memory(stop: threading.Event, peak: list[int]) -> None:
    """Tracks peak RSS (peak[0]) and peak USS (peak[1]): USS leaves out shared pages, such as
    object-store memory the driver has mapped, which RSS counts."""
    process = psutil.Process()
    while not stop.is_set():
        info = process.memory_full_info()
        peak[0] = max(peak[0], info.rss)
        peak[1] = max(peak[1], info.uss)
        time.sleep(0.01)


def measure(n: int, batch_size: int) -> dict[str, float]:
    """Generates `n` POPE questions in this process; returns RSS/USS figures in MiB and seconds."""
    import ray

    from pipeline.config import build_config
    from pipeline.run import generate
    from pipeline.synth import write_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        synth = write_synthetic(Path(tmp) / "data", seed=0, n_images=16)
        root = Path(tmp) / "pope"
        root.mkdir()
        (root / "images").symlink_to(synth.coco_root / "val2014")
        images = sorted(p.name for p in (synth.coco_root / "val2014").glob("*.jpg"))
        with (root / "coco_pope_random.json").open("w") as handle:
            for i in range(n):
                line = {"question_id": i, "image": images[i % len(images)],
                        "text": f"Is there a dog number {i} in the image?", "label": "yes" if i % 2 else "no"}
                handle.write(json.dumps(line) + "\n")
        config = build_config({
            "benchmark": {"name": "pope", "root": str(root)},
            "generation": {"max_new_tokens": 1, "batch_size": batch_size},
            "resources": {"num_actors": 1, "cpus_per_actor": 1},
            "output_dir": str(Path(tmp) / "runs"),
        })
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, object_store_memory=300 * 1024 * 1024)
        ray.data.DataContext.get_current().enable_progress_bars = False
        info = psutil.Process().memory_full_info()
        before, before_uss = info.rss, info.uss
        stop, peak = threading.Event(), [before, before_uss]
        sampler = threading.Thread(target=_peak_memory, args=(stop, peak), daemon=True)
        sampler.start()
        summary = generate(config, log=lambda _: None)
        stop.set()
        sampler.join()
        ray.shutdown()
        assert summary.n_generated == n, summary
    mib = 1024 * 1024
    return {"n": n, "before_mib": before / mib, "peak_mib": peak[0] / mib,
            "growth_mib": (peak[0] - before) / mib, "uss_before_mib": before_uss / mib,
            "uss_peak_mib": peak[1] / mib, "seconds": summary.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one N, JSON out
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.batch_size)))
        return

    print(f"{'samples':>8} {'RSS before':>11} {'peak RSS':>9} {'growth':>8} {'USS before':>11} {'peak USS':>9} {'generate':>9}")
    for n in args.samples:
        # A fresh process per N: a peak RSS never goes down, so one process would carry it over.
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--batch-size", str(args.batch_size)],
            check=True, capture_output=True, text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{r['n']:>8} {r['before_mib']:>8.0f} MiB {r['peak_mib']:>5.0f} MiB "
              f"{r['growth_mib']:>4.0f} MiB {r['uss_before_mib']:>7.0f} MiB {r['uss_peak_mib']:>5.0f} MiB "
              f"{r['seconds']:>7.1f} s")


if __name__ == "__main__":
    main()
