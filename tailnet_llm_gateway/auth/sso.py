"""Auth `sso`: a browser route behind the SSO service (forward_auth to oauth2-proxy or the like); the
upstream is told who signed in, in the headers the SSO answer is copied into."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from policy.gateway_contract import SSO

from .mode import Access, AuthMode, RouteFacts
from .none import browser_route

if TYPE_CHECKING:
    from ..render.caddyfile.writer import Writer
    from ..topology import Topology
    from ..topology.routes import Route


class SsoMode(AuthMode):
    name = SSO

    def build(self, facts: RouteFacts, options: Any) -> Access:
        return Access()

    def write(self, w: Writer, route: Route, topology: Topology) -> None:
        browser_route(w, route, topology, sso=True)
