"""The fake services around the gateway: oauth2-proxy's endpoints, a protected app that echoes what it
receives (and records it), an MCP server's event stream."""

from __future__ import annotations

import time

from .handler import JsonHandler

SESSION_COOKIE = "_oauth2_proxy"
VALID_SESSION = "valid-session"
SSO_EMAIL = "alice@example.com"
SSO_USER = "alice"


class FakeSsoHandler(JsonHandler):
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


class HeaderEchoHandler(JsonHandler):
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
