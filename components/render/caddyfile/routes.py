"""Browser routes: SSO, the SSO service's own endpoints, fixed answers; API routes are api_routes', tailnet
browser routes browser_tailnet's."""

from __future__ import annotations

from policy.gateway_contract import NONE, SSO, markers

from ...topology import Route, Topology
from .api_routes import api_route
from .browser_tailnet import browser_tailnet_route
from .identity import sso_identity
from .proxy import proxy
from .writer import Writer


def route(w: Writer, route: Route, topology: Topology) -> None:
    if route.is_api:
        api_route(w, route, topology)
        return
    if route.browser:
        browser_tailnet_route(w, route, topology)
        return
    matcher = "" if route.is_catch_all else f" {route.path}"
    if route.respond is not None:
        w.line(f"# {route.path} bypasses SSO: a fixed answer for monitors.")
        w.open(f"handle{matcher}")
        # The settings' grammar keeps quotes, backslashes and braces out of a fixed answer; the explicit `*`
        # keeps an answer such as "/ok" from being read as a path matcher.
        w.line(f'respond * "{route.respond}" 200')
        w.close()
        return
    assert route.upstream is not None
    if route.auth == NONE:
        w.line(f"# {route.path} bypasses SSO: {route.upstream.name}'s own sign-in endpoints.")
    elif route.is_catch_all:
        w.line(f"# Everything else requires SSO and goes to {route.upstream.name}.")
    else:
        w.line(f"# {route.path} requires SSO and goes to {route.upstream.name}.")
    w.open(f"handle{matcher}")
    # `route` keeps this order; by default Caddy would run forward_auth before request_header.
    w.open("route")
    w.line(f"import {markers.IDENTITY_SNIPPET}")
    if route.auth == SSO:
        w.line(f"import {markers.SSO_SNIPPET}")
    if route.strip_prefix:
        w.line(f"# Strip {route.prefix} after SSO, so the sign-in redirect keeps the full URL.")
        w.line(f"uri strip_prefix {route.prefix}")
    proxy(w, topology, route.upstream, sso_identity(topology) if route.auth == SSO else None)
    w.close()
    w.close()
    w.close()
