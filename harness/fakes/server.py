"""A fake on a port: a threading HTTP server that keeps what it served and was told."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
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
        self.httpd = QuietServer(("127.0.0.1", port), handler, name)
        self.port = port
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
