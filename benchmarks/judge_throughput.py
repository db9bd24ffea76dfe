"""Judge throughput: video-QA judgements against a loopback OpenAI-compatible server (its own
process) that answers every request after a fixed latency, one request at a time vs N in flight.

Both passes judge the same items through `eval.judges.judge_all` (the `openai:` judge over
httpx, fresh caches); the script checks that their judgements are identical and prints the
wall times and the speed-up.

    python benchmarks/judge_throughput.py [--items 1000] [--latency-ms 100] [--in-flight 16]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the package and the tests' loopback endpoint

from eval.judges import JudgeCache, JudgeSettings, judge_all, make_judge  # noqa: E402
from judge_server import ChatEndpoint  # noqa: E402


def _verdict(body: dict) -> str:
    """A verdict that depends on the question, so a mix-up between items shows."""
    number = int(body["messages"][-1]["content"].split("Question: q")[1].split("\n")[0])
    return repr({"pred": "yes" if number % 3 else "no", "score": number % 6})


def _serve_forever(latency_s: float, ports: multiprocessing.Queue) -> None:
    endpoint = ChatEndpoint(_verdict, latency_s=latency_s)
    ports.put(endpoint.port)
    endpoint.serve_forever()


def serve(latency_s: float) -> tuple[multiprocessing.Process, int]:
    """Starts the endpoint in its own process (as a real one is: it does not share the judging
    process's interpreter lock) and returns it with its port."""
    ports: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve_forever, args=(latency_s, ports), daemon=True)
    process.start()
    return process, ports.get(timeout=30)


def timed(spec: str, items: list[dict], in_flight: int, cache: Path) -> tuple[float, tuple]:
    start = time.perf_counter()
    result = judge_all(make_judge(spec), "qa", items, JudgeCache(cache),
                       settings=JudgeSettings(max_in_flight=in_flight))
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--in-flight", type=int, default=16)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    items = [{"id": n, "question": f"q{n}", "answer": "a", "pred": "b"} for n in range(args.items)]
    server, port = serve(args.latency_ms / 1000)
    try:
        spec = f"openai:bench@http://127.0.0.1:{port}/v1"
        with tempfile.TemporaryDirectory() as tmp:
            sequential_s, sequential = timed(spec, items, 1, Path(tmp) / "sequential.jsonl")
            concurrent_s, concurrent = timed(spec, items, args.in_flight, Path(tmp) / "concurrent.jsonl")
            cached_s, cached = timed(spec, items, args.in_flight, Path(tmp) / "concurrent.jsonl")
    finally:
        server.terminate()
        server.join()
    if not (sequential == concurrent == cached) or sequential[1]:
        raise SystemExit("judgements differ between the passes (or some were unjudged)")
    print(f"{args.items} items, {args.latency_ms:g} ms server latency, loopback; "
          f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} CPUs")
    print(f"sequential (1 in flight):     {sequential_s:8.2f} s  {args.items / sequential_s:7.1f} items/s")
    print(f"concurrent ({args.in_flight} in flight):   {concurrent_s:8.2f} s  {args.items / concurrent_s:7.1f} items/s")
    print(f"from the cache:               {cached_s:8.2f} s")
    print(f"speed-up concurrent / sequential: {sequential_s / concurrent_s:.2f}x; judgements identical: yes")


if __name__ == "__main__":
    main()
