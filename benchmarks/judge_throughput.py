"""Judge throughput: video-QA judgements against a loopback OpenAI-compatible server (its own
process) that answers every request after a fixed latency, one request at a time vs N in flight.

Both passes judge the same items through `eval.judges.judge_all` (the `openai:` judge over
httpx, fresh caches); the script checks that their judgements are identical and prints the
wall times and the speed-up.

    python benchmarks/judge_throughput.py [--items 1000] [--latency-ms 100] [--in-flight 16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.judges import JudgeCache, JudgeSettings, judge_all, make_judge  # noqa: E402


def _serve_forever(latency_s: float, ports: multiprocessing.Queue) -> None:
    """A chat-completions endpoint: after `latency_s`, a verdict that depends on the question."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints
        # Headers and body go out as two writes; without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every reply on loopback (measured: 148 ms, not 100).
        disable_nagle_algorithm = True

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            number = int(body["messages"][-1]["content"].split("Question: q")[1].split("\n")[0])
            time.sleep(latency_s)
            verdict = {"pred": "yes" if number % 3 else "no", "score": number % 6}
            payload = json.dumps({"choices": [{"message": {"content": repr(verdict)}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ports.put(server.server_port)
    server.serve_forever(poll_interval=0.05)


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
