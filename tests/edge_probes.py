"""Probes a client sends to the edge, shared by the live tests and the tests of those tests."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import httpx

from harness import fakes

SPOOFED_IDENTITY = {
    "X-Forwarded-Email": "mallory@evil.example",
    "X-Forwarded-User": "mallory",
    "X-Forwarded-Preferred-Username": "mallory",
    "X-Auth-Request-Email": "mallory@evil.example",
    "X-Auth-Request-User": "mallory",
    "Remote-User": "mallory",
    "X-Remote-User": "mallory",
    "X-Webauth-User": "mallory",
    # What a Tailscale serve node says about its caller; a client must not be able to say it.
    "Tailscale-User-Login": "mallory@evil.example",
    "Tailscale-User-Name": "Mallory",
    "Tailscale-User-Profile-Pic": "https://evil.example/m.png",
    "Tailscale-App-Capabilities": '{"example.com/cap/llm":[{"admin":true}]}',
}
SESSION = {"Cookie": f"{fakes.SESSION_COOKIE}={fakes.VALID_SESSION}"}


def raw_get(base_url: str, raw_path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """GET a path exactly as written (no client-side normalisation of dots, slashes or escapes)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", raw_path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def raw_request(
    port: int, method: str, path: str, headers: list[str], body: bytes, timeout_s: float = 60
) -> tuple[int, float]:
    """Send a request as bytes, framing and all (a broken body stays broken), to the edge on loopback; the
    status it answered (0: none) and how long the answer took."""
    import socket

    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json", *headers]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        if "Content-Length" in " ".join(headers):
            conn.shutdown(socket.SHUT_WR)  # the body ends early: the client is gone
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            pass
    status_line = answer.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    return status, time.monotonic() - started


def refused_by_allow_list(response: httpx.Response) -> bool:
    """The edge's own 404 for a path outside an API route's allow-list (not an upstream's answer)."""
    if response.status_code != 404 or not response.headers.get("content-type", "").startswith("application/json"):
        return False
    return bool(response.json().get("error", {}).get("type") == "not_found")


def received_headers(response: httpx.Response) -> dict[str, str]:
    """The headers a header-echo upstream saw, with lower-case names."""
    return {k.lower(): v for k, v in response.json()["headers"].items()}


def assert_identity_not_spoofable(base_url: str, key: str) -> None:
    """Spoofed identity headers reach no upstream; protected ones see only the SSO's values."""
    headers = {**SPOOFED_IDENTITY, **SESSION}
    protected = httpx.get(f"{base_url}/dash/x", headers=headers, timeout=30)
    assert protected.status_code == 200, f"protected route with a session: {protected.status_code}"
    seen = received_headers(protected)
    assert seen.get("x-forwarded-email") == fakes.SSO_EMAIL, "a client could set X-Forwarded-Email on a protected route"
    assert seen.get("x-forwarded-user") == fakes.SSO_USER, "a client could set X-Forwarded-User on a protected route"
    assert seen.get("x-forwarded-preferred-username") == fakes.SSO_USER, (
        "a client could set X-Forwarded-Preferred-Username on a protected route"
    )
    for name in SPOOFED_IDENTITY:
        if name.lower() not in ("x-forwarded-email", "x-forwarded-user", "x-forwarded-preferred-username"):
            assert name.lower() not in seen, f"{name} from the client reached the protected upstream"
    assert seen.get("host") == urlsplit(protected.json()["self"]).netloc, (
        f"the protected upstream got Host {seen.get('host')!r}, the client's, not its own name"
    )

    bypass = httpx.get(f"{base_url}/oauth2/anything", headers=SPOOFED_IDENTITY, timeout=30)
    seen = received_headers(bypass)
    for name in SPOOFED_IDENTITY:
        assert name.lower() not in seen, f"{name} from the client reached the SSO service on a bypass route"


def is_json_error(response_body: bytes) -> bool:
    try:
        return "error" in json.loads(response_body)
    except ValueError:
        return False


def access_log_lines(log_path, marker: str, count: int = 1, timeout_s: float = 5.0) -> list[dict]:
    """The edge's JSON access log lines whose URI holds `marker`, once `count` are there (bounded wait)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [
            entry
            for raw in log_path.read_text(errors="replace").splitlines()
            if raw.startswith("{") and marker in raw
            for entry in [json.loads(raw)]
            if entry.get("logger", "").startswith("http.log.access") and marker in entry["request"]["uri"]
        ]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)
