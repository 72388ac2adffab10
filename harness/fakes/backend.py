"""The fake llama.cpp: an OpenAI-compatible backend."""

from __future__ import annotations

import json
import re
import time
from typing import ClassVar

from .handler import JsonHandler

# The streamed reply: the first chunk comes at once, the rest only after this pause.
STREAM_PAUSE_S = 1.0
STREAM_WORDS = ("Hello", " from", " the", " fake", " backend")


class OpenAIBackendHandler(JsonHandler):
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
