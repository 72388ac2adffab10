"""`python -m harness.fakes`: the fake backend (or, with --echo, the recording echo) in its own process."""

from __future__ import annotations

import contextlib
from http.server import BaseHTTPRequestHandler

from .backend import STREAM_PAUSE_S, OpenAIBackendHandler
from .server import QuietServer
from .services import RecordingEchoHandler


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
    server = QuietServer((args.host, args.port), handler, args.name)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
