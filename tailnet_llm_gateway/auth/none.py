"""Auth `none`: open routes, only for fixed answers (health checks) and the SSO service's own sign-in
endpoints; and the browser-route block `sso` shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from policy.gateway_contract import NONE, markers
from policy.gateway_contract import caddyfile as shapes

from ..errors import SettingsError
from ..render.caddyfile.identity import sso_identity
from ..render.caddyfile.proxy import proxy
from .mode import Access, AuthMode, RouteFacts

if TYPE_CHECKING:
    from ..render.caddyfile.writer import Writer
    from ..topology import Topology
    from ..topology.routes import Route


class NoneMode(AuthMode):
    name = NONE

    def build(self, facts: RouteFacts, options: Any) -> Access:
        upstream, sso = facts.upstream, facts.settings.sso.service
        if upstream is not None and upstream.name != sso:
            raise SettingsError(
                f"{facts.where}.auth",
                f"'none' is only for health and SSO endpoints; {upstream.name!r} would be reachable without SSO",
            )
        return Access()

    def write(self, w: Writer, route: Route, topology: Topology) -> None:
        browser_route(w, route, topology, sso=False)


def browser_route(w: Writer, route: Route, topology: Topology, sso: bool) -> None:
    """A fixed answer, or a proxied route behind SSO (`sso`) or open (the SSO service's own endpoints)."""
    head = shapes.route_head(None if route.is_catch_all else route.path)
    if route.respond is not None:
        w.line(f"# {route.path} bypasses SSO: a fixed answer for monitors.")
        w.open(head)
        # The settings' grammar keeps quotes, backslashes and braces out of a fixed answer; the explicit `*`
        # keeps an answer such as "/ok" from being read as a path matcher.
        w.line(f'respond * "{route.respond}" 200')
        w.close()
        return
    assert route.upstream is not None
    if not sso:
        w.line(f"# {route.path} bypasses SSO: {route.upstream.name}'s own sign-in endpoints.")
    elif route.is_catch_all:
        w.line(f"# Everything else requires SSO and goes to {route.upstream.name}.")
    else:
        w.line(f"# {route.path} requires SSO and goes to {route.upstream.name}.")
    w.open(head)
    # `route` keeps this order; by default Caddy would run forward_auth before request_header.
    w.open("route")
    w.line(f"import {markers.IDENTITY_SNIPPET}")
    if sso:
        w.line(shapes.IMPORT_SSO)
    if route.strip_prefix:
        w.line(f"# Strip {route.prefix} after SSO, so the sign-in redirect keeps the full URL.")
        w.line(f"uri strip_prefix {route.prefix}")
    proxy(w, topology, route.upstream, sso_identity(topology) if sso else None)
    w.close()
    w.close()
    w.close()
