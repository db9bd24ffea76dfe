"""The video fixtures' shared pieces: the generations table of a fixture run, and a loopback
OpenAI-compatible chat server that stands in for GPT-3.5.

The server answers in one of two modes. Recording (`replies=None`): each reply is picked from
REPLY_CHOICES by a hash of the request's messages, and every (messages, reply) is logged; this
is how `fixtures/video/run_references.py` ran Video-ChatGPT's and Video-LLaVA's scripts. Replay
(`replies=` that log): a request gets the logged reply for byte-identical messages, and a 404
otherwise, so a halleval prompt that differs from the reference's in any character goes unjudged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from conftest import read_benchmark
from judge_server import ChatEndpoint
from pipeline.schema import to_table

FIXTURES = Path(__file__).parent / "fixtures" / "video"
ANSWERS = json.loads((FIXTURES / "model_answers.json").read_text())
"""sample_id → the fixture model's answer; null marks a row whose video failed to decode."""

REPLY_CHOICES = {
    # quirks on purpose: a float score (int() → 4), mixed-case and sentence verdicts, a verdict
    # with neither "yes" nor "no" (scored, but out of the accuracy)
    "qa": ["{'pred': 'yes', 'score': 4.8}", "{'pred': 'no', 'score': 1}", "{'pred': 'Yes, mostly', 'score': 3}",
           "{'pred': 'unsure', 'score': 2}", "{'pred': 'NO', 'score': 0}", "{'pred': 'yes', 'score': 5}"],
    "criterion": ["{'score': 4.8}", "{'score': 2}", "{'score': 3}", "{'score': 1}", "{'score': 5}", "{'score': 0}"],
}


def fixture_table(benchmark: str, root: str, subset: str | None = None):
    """The generations table of a fixture run: the reader's samples with ANSWERS as outputs."""
    rows = []
    for sample in read_benchmark(benchmark, FIXTURES / root, subset=subset):
        answer = ANSWERS[sample.sample_id]
        row = {**sample.to_row(), "run_id": "fixture", "model": "m", "method": "greedy", "output_text": answer}
        if answer is None:
            row["error"] = f"video {sample.video_path} could not be decoded"
        rows.append(row)
    return to_table(rows)


def _messages_key(messages: list[dict[str, str]]) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


class ChatServer(ChatEndpoint):
    """The loopback endpoint, recording or replaying (see module doc); `log` holds what it
    recorded."""

    def __init__(self, replies: list[dict[str, Any]] | None = None) -> None:
        self.log: list[dict[str, Any]] = []
        recorded = None if replies is None else {_messages_key(r["messages"]): r["reply"] for r in replies}

        def reply(body: dict[str, Any]) -> str | None:
            messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
            if recorded is not None:
                return recorded.get(_messages_key(messages))
            kind = "qa" if "'pred'" in messages[-1]["content"] else "criterion"
            digest = hashlib.sha256(messages[-1]["content"].encode()).digest()[0]
            answer = REPLY_CHOICES[kind][digest % len(REPLY_CHOICES[kind])]
            self.log.append({"messages": messages, "reply": answer})
            return answer

        super().__init__(reply)
        self.base_url = self.url

    @property
    def calls(self) -> int:
        return len(self.requests)
