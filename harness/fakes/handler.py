"""What every fake shares: JSON answers, quiet logs, and the edge's own health checks answered as
LiteLLM answers them."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import ClassVar


class JsonHandler(BaseHTTPRequestHandler):
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
