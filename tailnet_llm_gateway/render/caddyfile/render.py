"""The whole Caddyfile: global options, snippets, listeners, the site and its routes in Caddy's order."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from policy.gateway_contract import SSO, markers
from policy.gateway_contract import caddyfile as shapes

from .forwarders import forwarders
from .identity import identity_snippet, node_address, sso_snippet
from .logs import access_log, log_filter
from .readiness import errors, readiness
from .routes import route
from .writer import Writer

if TYPE_CHECKING:
    from ...topology import Topology

# Where the edge answers, on its container-loopback health listener, the id of the config it runs.
CONFIG_ID_PATH = "/config-id"
_CONFIG_ID_LINE = f'respond {CONFIG_ID_PATH} "{{id}}" 200'


def render_caddyfile(topology: Topology, stack: str) -> str:
    w = Writer()
    w.line(f"# Rendered by tailnet-llm-gateway from Pulumi.{stack}.yaml. Do not edit: change the stack")
    w.line("# settings and render again (python -m tailnet_llm_gateway render).")
    w.open("")
    w.line("# Certificates come from Tailscale (or no TLS for local checks): no ACME, no :80 redirects.")
    w.line("auto_https off")
    w.line("# The admin API only on a unix socket inside the container: `pulumi up` loads a new Caddyfile through it")
    w.line("# (caddy reload) once the file is whole. Nothing outside the container can reach it.")
    w.line(f"admin unix/{topology.edge.admin_socket}")
    w.line("# No HTTP/3: it would advertise Caddy's in-container port in Alt-Svc, and no UDP port is published.")
    w.open("servers")
    w.line("protocols h1 h2")
    w.close()
    w.line("# A new Caddyfile is loaded in place (caddy reload): requests and streams already running finish")
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
    health = topology.edge.health
    if health is not None:
        w.line()
        w.line("# Container healthcheck only: loopback inside the container, never published.")
        w.open(f"http://{health}")
        w.line(f"bind {health.host}")
        w.line('respond /healthz "ok" 200')
        w.line("# Which config this edge runs: the hash of this file without this line (stack output edgeConfigId).")
        w.line(_CONFIG_ID_LINE)
        w.line("respond 421")
        w.close()
    w.line()
    _metrics_listener(w, topology)
    forwarders(w, topology)
    w.line()
    site = topology.site
    w.open(site.listener.address)
    if site.listener.bind is not None:
        w.line(f"# Plain HTTP on {site.listener.bind} only, no certificates.")
        w.line(f"bind {site.listener.bind}")
    elif site.tls_files is not None:
        w.line("# Certificate files from `tailscale cert`, mounted read-only.")
        w.line(f"tls {site.tls_files[0]} {site.tls_files[1]}")
    else:
        w.line("# The gateway's Tailscale node terminates TLS and proxies here; no host port leads here.")
    if site.one_request_per_connection:
        w.line("# One request per connection: the node's serve keeps no idle connection here, so none can be closed")
        w.line("# by a reload just as serve sends a request on it (that request would be lost: a 502).")
        w.line("header >Connection close")
    node = node_address(topology)
    if node is not None:
        w.line(f"# The gateway's Tailscale node, at its pinned address ({node}); see {markers.IDENTITY_SNIPPET}.")
        w.line(shapes.not_from_node(node))
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
    metrics = topology.edge.metrics
    if metrics.bind is None:
        w.line("# Prometheus metrics: on the edge's container network only (no port is published, and the tailnet")
        w.line("# node forwards only the site).")
    else:
        w.line(f"# Prometheus metrics, on {metrics.bind} only.")
    w.open(metrics.address)
    if metrics.bind is not None:
        w.line(f"bind {metrics.bind}")
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
