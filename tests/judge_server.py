"""The loopback OpenAI-compatible chat endpoint that tests and benchmarks judge against.

`ChatEndpoint(reply)` serves /v1/chat/completions on 127.0.0.1: it records each request body and
answers with the text `reply(body)` gives (a recorded review, grade or verdict standing in for
GPT), or 404 when `reply` gives None. Tests that need misbehaving replies (status codes,
Retry-After, trickled bodies) write their own handler with `send_json` and `completion`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], "str | None"]


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: bytes,
              headers: dict[str, str] | None = None) -> None:
    """Writes one HTTP response with a body (and its Content-Length)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def completion(content: str | None, model: str | None = None) -> bytes:
    """A chat-completion body whose one choice says `content` (the fields clients parse)."""
    return json.dumps({"id": "loopback", "object": "chat.completion", "model": model,
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}]}).encode()


class ChatEndpoint:
    """`with ChatEndpoint(reply) as endpoint:` serves on `endpoint.url` (…/v1) until the block
    ends; `serve_forever()` serves in the calling thread (a server in its own process).

    Args:
        reply: request body -> the reply's content, or None for a 404.
        latency_s: each reply waits this long first (a remote endpoint's latency).
    """

    def __init__(self, reply: Reply, latency_s: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints
            # Headers and body go out as two writes; without TCP_NODELAY, Nagle's algorithm and
            # the client's delayed ACK add ~40 ms to every reply on loopback.
            disable_nagle_algorithm = True

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append(body)
                if latency_s:
                    time.sleep(latency_s)
                content = reply(body)
                if content is None:
                    send_json(self, 404, b'{"error": "no reply recorded for this request"}')
                else:
                    send_json(self, 200, completion(content, body.get("model")))

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def __enter__(self) -> ChatEndpoint:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
