"""A loopback OpenAI-compatible chat endpoint for tests: it records each request body and
answers with the text that `reply(body)` gives (a recorded review or grade standing in for GPT)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: bytes,
              headers: dict[str, str] | None = None) -> None:
    """Writes one HTTP response with a body (and its Content-Length)."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def completion(content: str | None) -> bytes:
    """A chat-completion body whose one choice says `content`."""
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


class RecordingEndpoint:
    """`with RecordingEndpoint(reply) as endpoint:` serves on `endpoint.url` (…/v1) until the block ends."""

    def __init__(self, reply: Callable[[dict[str, Any]], str]) -> None:
        self.requests: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append(body)
                send_json(self, 200, completion(reply(body)))

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"

    def __enter__(self) -> RecordingEndpoint:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
