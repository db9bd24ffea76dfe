"""Judges against a real loopback HTTP server that hangs or fails every time.

tests/test_metric_videoqa.py covers a 500 that recovers and a garbage reply; this adds what it
leaves out: a reply that never comes (the client timeout), a server that never recovers, and
the doubling backoff between attempts.
"""

from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from eval.judges import JudgeCache, judge_all, openai_judge


class _BrokenServer(BaseHTTPRequestHandler):
    """Hangs on /hang/..., answers 500 on /fail/...; records when each request arrived."""

    arrivals: ClassVar[list[float]] = []

    def do_POST(self):
        self.arrivals.append(time.monotonic())
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/hang"):
            time.sleep(2)  # well past the client's timeout
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _BrokenServer.arrivals = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenServer)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.mark.parametrize(("route", "reason"), [("hang", "no reply from"), ("fail", "HTTP 500 from")])
def test_a_judge_that_never_answers_is_retried_with_backoff_then_unjudged(server, tmp_path, route, reason):
    judge = openai_judge(f"openai:m@{server}/{route}", f"m@{server}/{route}", timeout_s=0.3)
    item = {"id": "q1", "question": "What moves?", "answer": "a ball", "pred": "a ball"}
    judged, unjudged = judge_all(judge, "qa", [item], JudgeCache(tmp_path / "cache.jsonl"),
                                 retries=2, backoff_s=0.2)
    assert judged == {} and reason in unjudged["q1"]
    arrivals = _BrokenServer.arrivals
    assert len(arrivals) == 3  # the first try and exactly `retries` more
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # Backoff 0.2 s then 0.4 s (plus the 0.3 s timeout when hanging): it doubles.
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[1] - gaps[0] >= 0.15, gaps
    assert not (tmp_path / "cache.jsonl").exists()  # a failure is never cached as a judgement
