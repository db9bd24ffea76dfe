"""Judges against a real loopback HTTP server that misbehaves in every way a real endpoint can.

Each route of `_Endpoint` is one misbehaviour: a reply with `"content": null`, a score of
1e999, a reply that is not a dict, a body trickled one byte per 50 ms, a reply that never
comes, a 500 every time, 429 with Retry-After, and a plain 100 ms answer for the concurrency
checks. The server is bounded (every slow route stops after ~3 s or when the client has gone)
and is shut down by the fixture. tests/test_metric_videoqa.py covers a 500 that recovers.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from eval.criteria import CRITERIA
from eval.judges import JudgeCache, JudgeSettings, judge_all, judgement_key, make_judge
from judge_server import completion, send_json

GOOD = "{'pred': 'yes', 'score': 4}"


class _Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint whose first path segment picks the misbehaviour."""

    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per reply

    arrivals: ClassVar[list[tuple[str, str, float]]] = []  # (route, question, time)
    lock: ClassVar[threading.Lock] = threading.Lock()
    limited: ClassVar[set[str]] = set()  # questions already answered 429 once
    current: ClassVar[ThreadingHTTPServer]  # the fixture's server (holds in_flight, peak_in_flight)
    _counted = False  # this request is in in_flight (send_error may reply before do_POST counts)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][-1]["content"].split("Question: ")[1].split("\n")[0]
        route = self.path.split("/")[1]
        server = self.server  # counted per server: a previous test's slow handler may still be running
        with self.lock:
            self.arrivals.append((route, question, time.monotonic()))
            server.in_flight += 1
            server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
        self._counted = True
        try:
            self._answer(route, question)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its deadline): what the test wants
        finally:
            self._leave()

    def send_response(self, *args, **kwargs):
        # A request stops counting before its reply goes out: once the client has the reply it
        # may send the next one, which must not overlap this handler's bookkeeping.
        self._leave()
        super().send_response(*args, **kwargs)

    def _leave(self) -> None:
        with self.lock:
            if self._counted:
                self.server.in_flight -= 1
                self._counted = False

    def _answer(self, route: str, question: str) -> None:
        if route == "hang":
            time.sleep(3)
        if route == "fail" or route == "hang":
            send_json(self, 500, b"")
        elif route == "ratelimit" and question not in self.limited:
            with self.lock:
                self.limited.add(question)
            send_json(self, 429, b'{"error": "slow down"}', {"Retry-After": "1"})
        elif route == "trickle":
            payload = completion(GOOD)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            for byte in payload[:60]:  # 60 bytes = 3 s at most, then it stops
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        else:
            if route == "slow":
                time.sleep(0.1)
            content = {"null": None, "huge": "{'pred': 'yes', 'score': 1e999}",
                       "nondict": "['yes', 4]", "bigint": "{'pred': 'yes', 'score': 1%s}" % ("0" * 400)}.get(route, GOOD)
            send_json(self, 200, completion(content) if route != "notobject" else b"[1, 2, 3]")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Endpoint.arrivals, _Endpoint.limited = [], set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    httpd.in_flight = httpd.peak_in_flight = 0
    _Endpoint.current = httpd
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def _items(n: int, pred: str = "a ball") -> list[dict[str, str]]:
    return [{"id": f"q{i}", "question": f"q{i}", "answer": "a ball", "pred": pred} for i in range(n)]


def _judge(server: str, route: str):
    return make_judge(f"openai:m@{server}/{route}")


@pytest.mark.parametrize(("route", "reason"), [
    ("null", "has no text (content: null)"),
    ("huge", "score is not a number"),  # 1e999 is inf: int(inf) overflows in the reference
    ("bigint", "out of range"),
    ("nondict", "reply is not a Python dict"),
    ("notobject", "malformed chat completion"),
    ("fail", "HTTP 500 from"),
])
def test_an_unusable_reply_is_retried_then_left_unjudged_never_scored(server, tmp_path, route, reason):
    cache = JudgeCache(tmp_path / "cache.jsonl")
    judged, unjudged = judge_all(_judge(server, route), "qa", _items(1), cache, retries=2, backoff_s=0.05)
    assert judged == {} and reason in unjudged["q0"], unjudged
    assert len(_Endpoint.arrivals) == 3  # the first try and exactly `retries` more
    assert not (tmp_path / "cache.jsonl").exists()  # a failure is never cached as a judgement


def test_retries_back_off_doubling(server, tmp_path):
    judge_all(_judge(server, "fail"), "qa", _items(1), JudgeCache(tmp_path / "c.jsonl"), retries=2, backoff_s=0.2)
    gaps = [later - earlier for (_, _, earlier), (_, _, later) in itertools.pairwise(_Endpoint.arrivals)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[1] - gaps[0] >= 0.15, gaps


@pytest.mark.parametrize("route", ["trickle", "hang"])
def test_the_deadline_bounds_the_whole_request_not_each_read(server, tmp_path, route):
    # The trickled body is ~70 bytes at one byte per 50 ms: every read succeeds within a
    # per-read timeout, so only a total deadline stops it.
    settings = JudgeSettings(deadline_s=0.4, retries=1, backoff_s=0.0)
    start = time.monotonic()
    judged, unjudged = judge_all(_judge(server, route), "qa", _items(1), JudgeCache(tmp_path / "c.jsonl"),
                                 settings=settings)
    elapsed = time.monotonic() - start
    assert judged == {} and "deadline" in unjudged["q0"]
    assert elapsed < 2.5, elapsed  # two attempts of 0.4 s (plus load), not two trickles of 3 s each
    assert len(_Endpoint.arrivals) == 2


def test_429_waits_for_retry_after_without_using_up_retries(server, tmp_path):
    settings = JudgeSettings(retries=0, max_in_flight=4)
    judged, unjudged = judge_all(_judge(server, "ratelimit"), "qa", _items(3), JudgeCache(tmp_path / "c.jsonl"),
                                 settings=settings)
    assert unjudged == {} and set(judged) == {"q0", "q1", "q2"}  # retries=0, yet all judged
    first = min(t for _, _, t in _Endpoint.arrivals)
    by_question = {}
    for _, question, arrived in _Endpoint.arrivals:
        by_question.setdefault(question, []).append(arrived - first)
    for question, times in by_question.items():
        assert len(times) == 2 and times[1] >= 0.95, (question, times)  # Retry-After: 1 honoured


def test_a_429_that_never_ends_gives_up_after_the_allowed_waits(server, tmp_path):
    _Endpoint.limited = set()

    class Always(set):
        def __contains__(self, item):
            return False

    _Endpoint.limited = Always()
    settings = JudgeSettings(rate_limit_waits=1, max_retry_after_s=0.1)
    judged, unjudged = judge_all(_judge(server, "ratelimit"), "qa", _items(1), JudgeCache(tmp_path / "c.jsonl"),
                                 settings=settings)
    assert judged == {} and "HTTP 429" in unjudged["q0"] and len(_Endpoint.arrivals) == 2


def test_concurrent_results_equal_sequential_and_the_cache_stays_intact(server, tmp_path):
    items = _items(16)
    sequential = judge_all(_judge(server, "slow"), "qa", items, JudgeCache(tmp_path / "seq.jsonl"),
                           settings=JudgeSettings(max_in_flight=1))
    assert _Endpoint.current.peak_in_flight == 1
    _Endpoint.current.peak_in_flight = 0
    concurrent = judge_all(_judge(server, "slow"), "qa", items, JudgeCache(tmp_path / "conc.jsonl"),
                           settings=JudgeSettings(max_in_flight=8))
    assert concurrent == sequential and list(concurrent[0]) == [item["id"] for item in items]
    # Requests overlapped, never more than asked (speed is benchmarks/judge_throughput.py's job:
    # a timed assert fails on a loaded machine).
    assert 2 <= _Endpoint.current.peak_in_flight <= 8
    lines = [json.loads(line) for line in (tmp_path / "conc.jsonl").read_text().splitlines()]
    assert len(lines) == 16 and len({line["key"] for line in lines}) == 16


def test_requests_per_s_spaces_request_starts(server, tmp_path):
    judge_all(_judge(server, "ok"), "qa", _items(5), JudgeCache(tmp_path / "c.jsonl"),
              settings=JudgeSettings(max_in_flight=5, requests_per_s=10))
    starts = sorted(t for _, _, t in _Endpoint.arrivals)
    assert starts[-1] - starts[0] >= 0.38  # 5 starts, 0.1 s apart


def test_the_cache_is_keyed_on_the_judged_content(server, tmp_path):
    cache_file = tmp_path / "c.jsonl"
    judge = _judge(server, "ok")
    judge_all(judge, "qa", _items(3), JudgeCache(cache_file))
    assert len(_Endpoint.arrivals) == 3
    judge_all(judge, "qa", _items(3), JudgeCache(cache_file))  # same content: nothing asked
    assert len(_Endpoint.arrivals) == 3
    rewritten = _items(3)
    rewritten[1]["pred"] = "a red ball"  # predictions rewritten, same ids, same cache file
    judge_all(judge, "qa", rewritten, JudgeCache(cache_file))
    assert [q for _, q, _ in _Endpoint.arrivals[3:]] == ["q1"]
    other_judge = make_judge(f"openai:m2@{server}/ok")  # another judge spec: judged again
    judge_all(other_judge, "qa", _items(1), JudgeCache(cache_file))
    assert len(_Endpoint.arrivals) == 5
    criterion = CRITERIA.get("qa")
    assert judgement_key("a", criterion, _items(1)[0]) != judgement_key("a", CRITERIA.get("correctness"), _items(1)[0])


def test_a_torn_or_garbled_cache_line_is_skipped_with_one_warning(server, tmp_path, capsys):
    cache_file = tmp_path / "c.jsonl"
    judge = _judge(server, "ok")
    judge_all(judge, "qa", _items(3), JudgeCache(cache_file))
    text = cache_file.read_bytes()
    lines = text.splitlines(keepends=True)
    # A garbled middle line and a last line torn by a crash (no newline).
    # Lines are appended in completion order, so read which id the torn line held.
    torn_id = json.loads(lines[2])["id"]
    cache_file.write_bytes(lines[0] + b"\xff\xfe{garbage\n" + lines[1] + lines[2][: len(lines[2]) // 2])
    capsys.readouterr()
    judged, unjudged = judge_all(judge, "qa", _items(3), JudgeCache(cache_file))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "skipped 2 unreadable line(s)" in warnings[0]
    assert set(judged) == {"q0", "q1", "q2"} and unjudged == {}
    assert [q for _, q, _ in _Endpoint.arrivals[3:]] == [torn_id]  # only the torn one is asked again
    # The re-judged line was not glued onto the torn one: a third pass reads it back.
    judge_all(judge, "qa", _items(3), JudgeCache(cache_file))
    assert len(_Endpoint.arrivals) == 4
    assert "warning" in capsys.readouterr().err  # the garbage is still there and still skipped


def test_a_hand_edited_cache_value_is_judged_again(server, tmp_path, capsys):
    cache_file = tmp_path / "c.jsonl"
    judge = _judge(server, "ok")
    judge_all(judge, "qa", _items(1), JudgeCache(cache_file))
    record = json.loads(cache_file.read_text())
    cache_file.write_text(cache_file.read_text().replace('"score": 4', '"score": 1e999'))
    judged, _ = judge_all(judge, "qa", _items(1), JudgeCache(cache_file))
    assert judged["q0"] == {"pred": "yes", "score": 4} and len(_Endpoint.arrivals) == 2
    assert record["key"] and "invalid" in capsys.readouterr().err
