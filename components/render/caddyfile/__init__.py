"""Topology -> Caddyfile. Pure and deterministic: the same topology gives the same bytes.

One module a part of the file: writer (indentation, JSON errors), logs, identity (the snippets that strip
identity headers and ask SSO), proxy (reverse_proxy, LiteLLM's replicas), readiness, routes (browser
routes), api_routes (bearer and tailnet routes).

What the rendered file guarantees:
- SSO bypasses exist only where the settings declare them (auth `none`, `bearer` or `tailnet`) and for
  the edge's own readiness report; every other path, including the catch-all, runs `forward_auth`, whose
  401 becomes a 302 to the SSO start URL carrying the whole original URL.
- Identity and client-address headers a client sends are dropped on every route before anything else
  runs, so upstreams see only the values the SSO service, the edge or the gateway's node vouched for.
  What the edge vouches for is set on the proxied request itself (`header_up`), after the proxy has
  removed hop-by-hop headers: a client that names a header in its `Connection` header cannot remove it.
  Every upstream gets its own name as Host.
- An API route forwards only its allowed paths; refuses browser requests from origins not listed in
  `corsOrigins` (Origin and Sec-Fetch-Site); takes the client's key from `Authorization: Bearer` (any
  case of the scheme), `x-api-key` or `api-key`, compares it as exact text, and refuses two different
  keys; answers a missing or wrong key with a 401 JSON error itself; fails closed (503) when a key it
  needs is empty at run time; hands LiteLLM the edge's own key and the client's name, never a client's
  key; answers CORS preflights only for the configured origins.
- The readiness report and its checks answer GET (and HEAD) only and forward no query and no body.
- Logs (access and errors) are JSON lines without headers (no key, no cookie) and without the value of
  any query parameter.
- No secret is written: keys are read from the environment at run time.
"""

from __future__ import annotations

import hashlib
import re

from policy.gateway_contract import SSO, markers

from ...topology import EDGE_HEALTH_PORT, Topology
from .forwarders import forwarders
from .identity import identity_snippet, node_address, sso_snippet
from .logs import access_log, log_filter
from .readiness import errors, readiness
from .routes import route
from .writer import Writer

# Where the edge answers, on its container-loopback health listener, the id of the config it runs.
CONFIG_ID_PATH = "/config-id"
_CONFIG_ID_LINE = f'respond {CONFIG_ID_PATH} "{{id}}" 200'


def render_caddyfile(topology: Topology, stack: str) -> str:
    w = Writer()
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
    w.line("# A new Caddyfile is loaded in place (caddy run --watch): requests and streams already running finish")
    w.line("# under the config they started with, for as long as a stream may last.")
    w.line(f"grace_period {topology.edge.grace_s}s")
    w.line("# Count requests, latency and status codes for the metrics listener below.")
    w.line("metrics")
    w.line("# Caddy's own log lines (errors name the request): no headers, no query values, as in the access log.")
    w.open("log default")
    w.line("output stderr")
    log_filter(w)
    w.close()
    w.close()
    w.line()
    identity_snippet(w, topology)
    if topology.sso is not None and any(r.auth == SSO for r in topology.routes):
        w.line()
        sso_snippet(w, topology)
    if topology.site.listen is None:
        w.line()
        w.line("# Container healthcheck only: loopback inside the container, never published.")
        w.open(f"http://127.0.0.1:{EDGE_HEALTH_PORT}")
        w.line("bind 127.0.0.1")
        w.line('respond /healthz "ok" 200')
        w.line("# Which config this edge runs: the hash of this file without this line (stack output edgeConfigId).")
        w.line(_CONFIG_ID_LINE)
        w.line("respond 421")
        w.close()
    w.line()
    _metrics_listener(w, topology)
    forwarders(w, topology)
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
    node = node_address(topology)
    if node is not None:
        w.line(f"# The gateway's Tailscale node, at its pinned address ({node}); see {markers.IDENTITY_SNIPPET}.")
        w.line(f"@{markers.NOT_FROM_NODE} not remote_ip {node}")
    w.line()
    access_log(w)
    w.line()
    readiness(w, topology)
    for each in topology.routes:
        w.line()
        route(w, each, topology)
    w.line()
    errors(w)
    w.close()
    text = w.text()
    return text.replace(_CONFIG_ID_LINE, _CONFIG_ID_LINE.format(id=config_id(text)))


def _metrics_listener(w: Writer, topology: Topology) -> None:
    edge = topology.edge
    if edge.metrics_listen is None:
        w.line("# Prometheus metrics: on the edge's container network only (no port is published, and the tailnet")
        w.line("# node forwards only the site).")
    else:
        w.line("# Prometheus metrics, on loopback (local check mode).")
    w.open(edge.metrics_address)
    if edge.metrics_listen is not None:
        w.line(f"bind {edge.metrics_listen.host}")
    w.open("@metrics")
    w.line("method GET")
    w.line("path /metrics")
    w.close()
    w.open("route")
    w.line("metrics @metrics")
    w.line("respond 404")
    w.close()
    w.close()


def config_id(caddyfile: str) -> str:
    """The id a Caddyfile reports as live: the sha256 (first 16 hex digits) of the file without its id."""
    unfilled = re.sub(r'respond /config-id "[0-9a-f]*" 200', _CONFIG_ID_LINE, caddyfile)
    return hashlib.sha256(unfilled.encode()).hexdigest()[:16]
