"""Topology -> Caddyfile. Pure and deterministic: the same topology gives the same bytes.

What the rendered file guarantees:
- SSO bypasses exist only where the settings declare them (auth `none` or `bearer`); every other path,
  including the catch-all, runs `forward_auth`, whose 401 becomes a 302 to the SSO start URL.
- Identity headers a client sends are dropped on every route before anything else runs, so upstreams
  see only the values the SSO service vouched for.
- The bearer route forwards only its allowed API paths, answers a missing or wrong key with a 401 JSON
  error itself, and fails closed (503) when the key is empty at run time.
- No secret is written: the key is read from the environment at run time.
"""

from __future__ import annotations

import json

from ..topology import EDGE_HEALTH_PORT, MASTER_KEY_ENV, Route, Topology

# Headers upstreams may treat as "who is this user". A client must never be able to set them.
CLIENT_IDENTITY_HEADERS = (
    "X-Forwarded-Email",
    "X-Forwarded-User",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-*",
    "Remote-*",
    "X-Remote-*",
    "X-Webauth-*",
    "X-Email",
    "X-User",
)

KEY_PLACEHOLDER = f"{{env.{MASTER_KEY_ENV}}}"


def _json_error(message: str, kind: str, code: int) -> str:
    # LiteLLM's error shape, so clients parse the edge's answers like LiteLLM's own.
    error = {"error": {"message": message, "type": kind, "param": None, "code": str(code)}}
    return json.dumps(error, separators=(",", ":"))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("\t" * self.depth + text) if text else "")

    def open(self, head: str) -> None:
        self.line(f"{head} {{" if head else "{")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.line("}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_caddyfile(topology: Topology, stack: str) -> str:
    w = _Writer()
    w.line(f"# Rendered by tailnet-llm-gateway from Pulumi.{stack}.yaml. Do not edit: change the stack")
    w.line("# settings and render again (python -m components render).")
    w.open("")
    w.line("# Certificates come from Tailscale (or no TLS for local checks): no ACME, no :80 redirects.")
    w.line("auto_https off")
    w.line("# No admin API: a new Caddyfile reaches Caddy by replacing its container.")
    w.line("admin off")
    w.line("# No HTTP/3: it would advertise Caddy's in-container port in Alt-Svc, and no UDP port is published.")
    w.open("servers")
    w.line("protocols h1 h2")
    w.close()
    w.close()
    w.line()
    _identity_snippet(w)
    if topology.sso is not None and any(r.auth == "sso" for r in topology.routes):
        w.line()
        _sso_snippet(w, topology)
    if topology.site.listen is None:
        w.line()
        w.line("# Container healthcheck only: loopback inside the container, never published.")
        w.open(f"http://127.0.0.1:{EDGE_HEALTH_PORT}")
        w.line("bind 127.0.0.1")
        w.line('respond /healthz "ok" 200')
        w.line("respond 421")
        w.close()
    w.line()
    w.open(topology.site.address)
    if topology.site.listen is not None:
        w.line("# Local check mode (--listen): plain HTTP on a loopback address, no certificates.")
        w.line(f"bind {topology.site.listen.host}")
    elif topology.site.terminates_tls:
        w.line("# Certificate files from `tailscale cert`, mounted read-only.")
        w.line(f"tls {topology.site.cert_file} {topology.site.key_file}")
    else:
        w.line("# The gateway's Tailscale node terminates TLS and proxies here; no host port leads here.")
    for route in topology.routes:
        w.line()
        _route(w, route)
    w.close()
    return w.text()


def _identity_snippet(w: _Writer) -> None:
    w.line("# Identity headers are trusted only from the SSO service: drop whatever a client sent.")
    w.open("(strip_client_identity)")
    for name in CLIENT_IDENTITY_HEADERS:
        w.line(f"request_header -{name}")
    w.close()


def _sso_snippet(w: _Writer, topology: Topology) -> None:
    sso = topology.sso
    assert sso is not None
    base = topology.site.redirect_base
    w.line(f"# Ask {sso.service.name} whether the session cookie is valid; copy only its identity headers.")
    w.open("(sso)")
    w.open(f"forward_auth {sso.service.address}")
    w.line(f"uri {sso.auth_path}")
    w.line("copy_headers " + " ".join(f"{src}>{dst}" for src, dst in sso.copy_headers))
    w.line("# No session: sign in, then come back to the original URL (before any prefix strip).")
    w.line("@unauthenticated status 401")
    w.open("handle_response @unauthenticated")
    w.line(f"redir * {base}{sso.start_path}?rd={base}{{http.request.orig_uri}} 302")
    w.close()
    w.close()
    w.close()


def _route(w: _Writer, route: Route) -> None:
    if route.auth == "bearer":
        _bearer_route(w, route)
        return
    matcher = "" if route.is_catch_all else f" {route.path}"
    if route.respond is not None:
        w.line(f"# {route.path} bypasses SSO: a fixed answer for monitors.")
        w.open(f"handle{matcher}")
        w.line(f"respond {json.dumps(route.respond)} 200")
        w.close()
        return
    assert route.upstream is not None
    if route.auth == "none":
        w.line(f"# {route.path} bypasses SSO: {route.upstream.name}'s own sign-in endpoints.")
    elif route.is_catch_all:
        w.line(f"# Everything else requires SSO and goes to {route.upstream.name}.")
    else:
        w.line(f"# {route.path} requires SSO and goes to {route.upstream.name}.")
    w.open(f"handle{matcher}")
    # `route` keeps this order; by default Caddy would run forward_auth before request_header.
    w.open("route")
    w.line("import strip_client_identity")
    if route.auth == "sso":
        w.line("import sso")
    if route.strip_prefix:
        w.line(f"# Strip {route.prefix} after SSO, so the sign-in redirect keeps the full URL.")
        w.line(f"uri strip_prefix {route.prefix}")
    w.line(f"reverse_proxy {route.upstream.address}")
    w.close()
    w.close()


def _bearer_route(w: _Writer, route: Route) -> None:
    assert route.upstream is not None
    name = route.upstream.name
    directive = f"handle_path {route.path}" if route.strip_prefix else f"handle {route.path}"
    w.line(f"# {route.path} bypasses SSO for API clients; the Bearer key guards it instead.")
    if route.strip_prefix:
        w.line(f"# handle_path strips {route.prefix} so {name} sees {route.forwarded_paths[0].removesuffix('/*')}.")
    w.open(directive)
    w.open("route")
    w.line("import strip_client_identity")
    w.line("# Fail closed: with an empty key, 'Bearer ' would match a request with an empty token.")
    # `vars` with a placeholder key compares the run-time value; cheaper per request than a CEL expression.
    w.line(f'@no_key_configured vars {KEY_PLACEHOLDER} ""')
    w.line("header @no_key_configured Content-Type application/json")
    no_key = _json_error("The gateway has no API key configured.", "no_key_configured", 503)
    w.line(f"respond @no_key_configured `{no_key}` 503")
    w.line(f"# Only the API: {name}'s docs, admin UI and other key-less pages stay off the tailnet.")
    w.line("@not_api not path " + " ".join(route.forwarded_paths))
    w.line("header @not_api Content-Type application/json")
    w.line(f"respond @not_api `{_json_error('Not found.', 'not_found', 404)}` 404")
    w.line(f"# Check the key here: without a database {name} answers a wrong key with 400, not 401.")
    w.line("# `vars` compares the exact text; the `header` matcher would read a `*` in the key as a wildcard.")
    w.line(f'@bad_key not vars {{http.request.header.Authorization}} "Bearer {KEY_PLACEHOLDER}"')
    w.line("header @bad_key Content-Type application/json")
    w.line('header @bad_key WWW-Authenticate "Bearer"')
    w.line(
        f"respond @bad_key `{_json_error('Authentication Error, missing or invalid API key.', 'auth_error', 401)}` 401"
    )
    w.line(f"reverse_proxy {route.upstream.address}")
    w.close()
    w.close()
