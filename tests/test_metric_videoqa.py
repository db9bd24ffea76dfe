"""Video QA / generation judging: reference scoring rules, cache, and a misbehaving local server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from eval.api import METRICS, ScoringContext
from eval.judges import make_judge, messages, parse_reply, JudgeError
from eval.metrics.videogen import score_textgen
from eval.metrics.videoqa import JUDGE_CACHE_FILE, read_predictions, score_qa
from pipeline.schema import to_table
from pipeline.registry import UnknownNameError

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"


REPLAY = FIXTURES / "videoqa_replay.jsonl"


def test_replay_judge_applies_reference_rules(tmp_path):
    items = read_predictions(FIXTURES / "videoqa_predictions.jsonl")
    result = score_qa(items, f"replay:{FIXTURES / 'videoqa_replay.jsonl'}", tmp_path / "c.jsonl")
    # scores 4.8 → 4, 1, "3" → 3; "Yes, mostly" counts yes (substring rule)
    assert result["average_score"] == pytest.approx((4 + 1 + 3) / 3)
    assert (result["yes"], result["no"], result["n"]) == (2, 1, 3)
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["judge"].startswith("replay:")


def test_exact_judge_and_cache_replays(tmp_path):
    items = read_predictions(FIXTURES / "videoqa_predictions.jsonl")
    cache = tmp_path / "out.json.judged.jsonl"
    first = score_qa(items, "exact", cache)
    assert (first["yes"], first["no"]) == (1, 2)  # "Skiing." == "skiing"; "2" != "two"
    lines = [json.loads(l) for l in cache.read_text().splitlines()]
    assert len(lines) == 3 and {l["judge"] for l in lines} == {"exact"}
    assert score_qa(items, f"replay:{cache}", tmp_path / "other.jsonl")["accuracy"] == first["accuracy"]


def test_parse_reply():
    assert parse_reply("{'pred': 'yes', 'score': 4.8}", "qa") == {"pred": "yes", "score": 4.8}
    for garbage in ("yes, 4", "{'pred': 'yes'}", "{'pred': 'yes', 'score': 'high'}"):
        with pytest.raises(JudgeError):
            parse_reply(garbage, "qa")


def test_prompt_is_the_reference_prompt():
    chat = messages("qa", {"question": "Q?", "answer": "A", "pred": "P"})
    assert chat[1]["content"].startswith("Please evaluate the following video-based question-answer pair:\n\nQuestion: Q?\n")
    assert chat[1]["content"].endswith("{'pred': 'yes', 'score': 4.8}.")


def test_unknown_judge_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'openai'"):
        make_judge("opnai:gpt-4")


class _FlakyServer(BaseHTTPRequestHandler):
    calls: dict[str, int] = {}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][1]["content"].split("Question: ")[1].split("\n")[0]
        question = question.split(" ")[0]
        self.calls[question] = self.calls.get(question, 0) + 1
        if question.startswith("500") and self.calls[question] == 1:
            self.send_response(500)
            self.end_headers()
            return
        content = "I think yes" if question.startswith("garbage") else "{'pred': 'no', 'score': 2.9}"
        payload = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_judge_failures_retry_then_stay_unjudged(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _FlakyServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        items = [{"id": n, "question": f"{n} question", "answer": "a", "pred": "b"} for n in ("500", "garbage", "ok")]
        spec = f"openai:test-model@http://127.0.0.1:{server.server_port}/v1"
        cache = tmp_path / "c.jsonl"
        result = score_qa(items, spec, cache, backoff_s=0.01)
        assert (result["n"], result["n_unjudged"], result["no"], result["yes"]) == (2, 1, 2, 0)
        assert result["unjudged"][0]["id"] == "garbage"
        assert result["average_score"] == 2.0  # int(2.9)
        assert _FlakyServer.calls == {"500": 2, "garbage": 4, "ok": 1}  # garbage: 1 + 3 retries
        score_qa(items, spec, cache, backoff_s=0.01)  # re-run: only the unjudged item is asked again
        assert _FlakyServer.calls == {"500": 2, "garbage": 8, "ok": 1}
    finally:
        server.shutdown()


def test_generation_criteria_with_replay(tmp_path):
    replay = tmp_path / "r.jsonl"
    replay.write_text("".join(json.dumps({"id": "v1", "criterion": c, "score": s}) + "\n"
                              for c, s in (("correctness", 3.5), ("detail", 2), ("context", 4), ("temporal", 1))))
    items = [{"id": "v1", "question": "q", "answer": "a", "pred": "p"}]
    result = score_textgen([(("correctness", "detail", "context"), items), (("temporal",), items)],
                           f"replay:{replay}", tmp_path / "c.jsonl", backoff_s=0)
    assert {c: v["average_score"] for c, v in result["criteria"].items()} == {
        "correctness": 3, "detail": 2, "context": 4, "temporal": 1}
    assert result["correctness"] == 3 and result["judge"].startswith("replay:")


def test_run_path_uses_the_runs_judge_and_caches_in_the_run_folder(tmp_path):
    items = read_predictions(FIXTURES / "videoqa_predictions.jsonl")
    rows = [
        {"run_id": "r", "sample_id": f"v-{item['id']}", "benchmark": "msvd_qa", "model": "m", "method": "greedy",
         "metadata": json.dumps({"id": item["id"], "question": item["question"], "answer": item["answer"]}),
         "output_text": item["pred"]}
        for item in items
    ]
    context = ScoringContext(benchmark_root=tmp_path / "benchmark", run_dir=tmp_path, judge=f"replay:{REPLAY}")
    from_run = METRICS.get("videoqa")().score_run(to_table(rows), context)
    from_file = score_qa(items, f"replay:{REPLAY}", tmp_path / "file.judged.jsonl")
    assert {k: from_run[k] for k in ("accuracy", "average_score", "yes", "no", "n")} == {
        k: from_file[k] for k in ("accuracy", "average_score", "yes", "no", "n")
    }
    assert (tmp_path / JUDGE_CACHE_FILE).is_file()
    assert not (tmp_path / "benchmark").exists()  # nothing is written into the benchmark folder
