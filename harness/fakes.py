"""Stand-ins for the services around the gateway, for the live edge tests (loopback only).

- `OpenAIBackend`: what llama.cpp serves: models, chat (plain and streamed), text completions,
  embeddings; no `/v1/responses`. A chat whose last message is "usage P C" reports P prompt and C
  completion tokens. A test can make it fail the next calls (`POST /_fake/fail-next`) and
  read the paths it served (`GET /_fake/requests`), in process or in its own process (`python -m
  harness.fakes`).
- `FakeSso`: oauth2-proxy's `/oauth2/auth` (202 with X-Auth-Request-* for a valid session cookie,
  401 otherwise) and a `/oauth2/start` page.
- `Mcp`: an MCP server's event stream (`/sse`), events written with a pause between them.
- `HeaderEcho`: a protected upstream that answers with the path and headers it received, and keeps them
  with the body (`requests` of its server) so a test can tell whether anything reached it.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

SESSION_COOKIE = "_oauth2_proxy"
VALID_SESSION = "valid-session"
SSO_EMAIL = "alice@example.com"
SSO_USER = "alice"
# The streamed reply: the first chunk comes at once, the rest only after this pause.
STREAM_PAUSE_S = 1.0
STREAM_WORDS = ("Hello", " from", " the", " fake", " backend")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle and delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True
    role: ClassVar[str] = ""

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _answered_edge_health_check(self) -> bool:
        """The edge's own health check of an upstream it balances, answered as LiteLLM answers it: not a
        request anything forwarded, so it is not recorded."""
        if self.path != "/health/liveliness" or not self.headers.get("User-Agent", "").startswith("Go-http-client"):
            return False
        self._send(200, "I'm alive!")
        return True


class OpenAIBackendHandler(_Handler):
    # The benchmark sets these to model a real backend's time to answer.
    reply_delay_s: ClassVar[float] = 0.0
    stream_pause_s: ClassVar[float] = STREAM_PAUSE_S

    def _record(self) -> None:
        self.server.served.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        # Every credential a backend call carried (None: none), to show no key reaches a backend.
        self.server.credentials.append(self.headers.get("Authorization"))  # type: ignore[attr-defined]

    def _fail_if_told(self) -> bool:
        failures = self.server.failures  # type: ignore[attr-defined]
        if not failures:
            return False
        status = failures.pop(0)
        self._send(status, {"error": {"message": f"told to fail with {status}", "code": status}})
        return True

    def do_GET(self) -> None:
        if self.path == "/_fake/requests":
            self._send(200, self.server.served)  # type: ignore[attr-defined]
            return
        if self._answered_edge_health_check():
            return
        self._record()
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "backend-model", "object": "model"}]})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/_fake/fail-next":
            self.server.failures.extend([int(body["status"])] * int(body.get("count", 1)))  # type: ignore[attr-defined]
            self._send(200, {"failures": self.server.failures})  # type: ignore[attr-defined]
            return
        self._record()
        if self._fail_if_told():
            return
        if self.path == "/v1/chat/completions":
            if body.get("stream"):
                self._stream(body)
            else:
                time.sleep(self.reply_delay_s)
                self._send(200, _completion(body.get("model", "m"), _asked_usage(body)))
        elif self.path == "/v1/completions":
            text = {"index": 0, "text": "pong", "finish_reason": "stop", "logprobs": None}
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            self._send(200, {"id": "cmpl-fake", "object": "text_completion", "choices": [text], "usage": usage})
        elif self.path == "/v1/embeddings":
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(count)]
            usage = {"prompt_tokens": 2, "total_tokens": 2}
            self._send(200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage})
        else:
            self._send(404, {"error": "not found"})

    def _stream(self, body: dict) -> None:
        # Chunked, as llama.cpp's server streams: a backend that dies mid-answer leaves the body unfinished
        # (no last chunk), which a client can tell from a complete answer.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body.get("model", "m")
        # "stream N words" as the last message asks for a long answer: one word a pause, like a generation.
        asked = re.fullmatch(r"stream (\d+) words", str((body.get("messages") or [{}])[-1].get("content")))
        long = asked is not None
        words = ("w ",) * int(asked.group(1)) if asked else STREAM_WORDS
        for index, word in enumerate(words):
            delta = {"role": "assistant", "content": word}
            self._chunk(f"data: {json.dumps(_chunk(model, delta, None))}\n\n")
            if index == 0 or long:
                time.sleep(self.stream_pause_s)
        self._chunk(f"data: {json.dumps(_chunk(model, {}, 'stop'))}\n\ndata: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _chunk(model: str, delta: dict, finish_reason: str | None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _asked_usage(body: dict) -> tuple[int, int]:
    """The usage to report: "usage P C" as the last message asks for P prompt and C completion tokens."""
    asked = re.fullmatch(r"usage (\d+) (\d+)", str((body.get("messages") or [{}])[-1].get("content")))
    return (int(asked.group(1)), int(asked.group(2))) if asked else (1, 1)


def _completion(model: str, usage: tuple[int, int] = (1, 1)) -> dict:
    prompt, completion = usage
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


class FakeSsoHandler(_Handler):
    def do_GET(self) -> None:
        if self.path.startswith("/oauth2/auth"):
            if f"{SESSION_COOKIE}={VALID_SESSION}" in (self.headers.get("Cookie") or ""):
                self.send_response(202)
                self.send_header("X-Auth-Request-Email", SSO_EMAIL)
                self.send_header("X-Auth-Request-User", SSO_USER)
                self.send_header("X-Auth-Request-Preferred-Username", SSO_USER)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(401, {"error": "unauthorized"})
        else:
            self._send(200, {"sso": self.path, "headers": dict(self.headers.items())})


class HeaderEchoHandler(_Handler):
    def _echo(self) -> None:
        if self._answered_edge_health_check():
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = (self.command, self.path, dict(self.headers.items()), body)
        self.server.requests.append(record)  # type: ignore[attr-defined]
        host, port = self.server.server_address[:2]
        self._send(
            200,
            {
                "upstream": self.server.name,
                "self": f"http://{host}:{port}",
                "path": self.path,
                "headers": dict(self.headers.items()),
            },
        )

    do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _echo


class RecordingEchoHandler(HeaderEchoHandler):
    """The echo in a process of its own: `GET /_fake/requests` lists what it received (method, path,
    headers), for a test that asks it directly, not through the edge."""

    def do_GET(self) -> None:
        if self.path == "/_fake/requests":
            records = self.server.requests  # type: ignore[attr-defined]
            self._send(200, [[method, path, headers] for method, path, headers, _ in records])
        else:
            self._echo()


# The MCP server's event stream: the first event at once, the second only after this pause.
SSE_PAUSE_S = 1.0


class McpHandler(HeaderEchoHandler):
    """An MCP server behind a bearer route: `/sse` streams two events with a pause between them; every
    other path echoes (and records) what it received."""

    def do_GET(self) -> None:
        if self.path != "/sse":
            self._echo()
            return
        self.server.requests.append((self.command, self.path, dict(self.headers.items())))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for index in range(2):
            self.wfile.write(f'event: message\ndata: {{"n": {index}}}\n\n'.encode())
            self.wfile.flush()
            if index == 0:
                time.sleep(SSE_PAUSE_S)
        self.close_connection = True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the benchmark opens 16+ connections at once

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], name: str) -> None:
        super().__init__(address, handler)
        self.name = name
        self.served: list[str] = []  # "METHOD path" of each backend call
        self.failures: list[int] = []  # statuses the next calls answer with
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # what an echo received
        self.credentials: list[str | None] = []  # the Authorization header of each backend call

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up early (probes, cancelled streams) are not failures of the fake


class FakeServer:
    """One fake on 127.0.0.1:port, served from a daemon thread until `stop()`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int, name: str) -> None:
        self.httpd = _QuietServer(("127.0.0.1", port), handler, name)
        self.port = port
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def main() -> None:
    """Run the fake backend in its own process (the benchmark keeps it off the client's GIL)."""
    import argparse

    parser = argparse.ArgumentParser(description="fake OpenAI-compatible backend on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    # 0.0.0.0 only inside a container on a network the test created (the soak's backends).
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="time to answer a chat completion")
    parser.add_argument("--stream-pause-ms", type=float, default=STREAM_PAUSE_S * 1000)
    parser.add_argument("--name", default="llamacpp")
    parser.add_argument("--echo", action="store_true", help="be a protected app that echoes what it receives")
    args = parser.parse_args()
    handler: type[BaseHTTPRequestHandler] = type(
        "BenchBackend",
        (OpenAIBackendHandler,),
        {"reply_delay_s": args.delay_ms / 1000, "stream_pause_s": args.stream_pause_ms / 1000},
    )
    if args.echo:
        handler = RecordingEchoHandler
    server = _QuietServer((args.host, args.port), handler, args.name)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
