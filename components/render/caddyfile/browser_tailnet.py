"""Tailnet browser routes: a web app for the people the tailnet policy grants a capability, who they are
told to the app in the headers it trusts; no second sign-in."""

from __future__ import annotations

from policy.gateway_contract import markers

from ...topology import Route, Topology
from .identity import granted
from .proxy import proxy
from .writer import Writer

TAILNET_CALLER = markers.TAILNET_CALLER
# Where each part of the caller's identity comes from: the node's serve sets these for a user's device.
IDENTITY_SOURCES = {
    "login": "Tailscale-User-Login",
    "email": "Tailscale-User-Login",
    "name": "Tailscale-User-Name",
}
# Why a browser is turned away: a page, since a person reads it. No brace, quote or backtick (it is
# written inside a Caddyfile token).
REFUSED_PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>403 Forbidden</title></head><body>"
    "<h1>Forbidden</h1><p>This page is for people on the tailnet whom its policy grants access. Ask the "
    "tailnet's admin for access, or open it from a device signed in as yourself (a tagged device has no "
    "user).</p></body></html>"
)


# Why a state-changing request from another site's page is turned away.
CROSS_SITE_PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>403 Forbidden</title></head><body>"
    "<h1>Forbidden</h1><p>A page of another site asked this app to change something on your behalf. The "
    "gateway refuses such requests: open the app itself and try again.</p></body></html>"
)
# Methods a browser may send from any page without changing anything (a form or a script of another site
# can also send these; the app must not change state on them).
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _var(field: str) -> str:
    return f"tailnet_{field}"


def browser_tailnet_route(w: Writer, route: Route, topology: Topology) -> None:
    assert route.upstream is not None and route.capability is not None
    name = route.upstream.name
    # The catch-all is the site's bare `handle` (everything no other block takes), as for SSO pages.
    directive = (
        "handle"
        if route.is_catch_all
        else f"handle_path {route.path}"
        if route.strip_prefix
        else f"handle {route.path}"
    )
    w.line(f"# {route.path} goes to {name} for the people the tailnet policy granted {route.capability}, as the")
    w.line("# node's serve says (it sets the headers itself; a client's copy is dropped unless it comes from the")
    w.line("# node). A tagged device has no user: it is refused. No SSO: the tailnet already said who it is.")
    w.open(directive)
    w.open("route")
    w.line(f"import {markers.IDENTITY_SNIPPET}")
    pattern = granted(route.capability)
    w.open(f"@{TAILNET_CALLER}")
    w.line(f"header_regexp Tailscale-App-Capabilities `{pattern}`")
    w.line("header Tailscale-User-Login *")
    w.close()
    w.line("vars tailnet_granted no")
    w.line("# Read now, before any proxying: what reaches the app is what was checked here.")
    for field in sorted({f for f, _ in route.identity_headers}):
        w.line(f"vars @{TAILNET_CALLER} {_var(field)} {{http.request.header.{IDENTITY_SOURCES[field]}}}")
    w.line(f"vars @{TAILNET_CALLER} tailnet_granted yes")
    w.line("@not_granted not vars tailnet_granted yes")
    w.line('header @not_granted Content-Type "text/html; charset=utf-8"')
    w.line(f"respond @not_granted `{REFUSED_PAGE}` 403")
    _refuse_cross_site_writes(w, route, topology)
    w.line(f"# {name} trusts these headers for who is signed in; set after the proxy dropped hop-by-hop headers,")
    w.line("# so no `Connection` header removes or replaces them.")
    proxy(w, topology, route.upstream, {header: f"{{vars.{_var(field)}}}" for field, header in route.identity_headers})
    w.close()
    w.close()
    w.close()


def _site_origin(topology: Topology) -> str:
    """CEL: the origin the site's own pages send (the node's HTTPS name; on loopback, as the request says)."""
    base = topology.site.redirect_base
    if "{" not in base:
        return f"'{base}'"
    return "{http.request.scheme} + '://' + {http.request.hostport}"


def _refuse_cross_site_writes(w: Writer, route: Route, topology: Topology) -> None:
    """Tailnet identity rides on every request a granted person's browser makes, whichever page sent it: a
    state-changing request from another site's page (Origin another, or null; Sec-Fetch-Site not same-origin)
    is a forgery unless the route's settings say otherwise."""
    if route.cross_site_writes:
        w.line("# Pages of other sites may send this app state-changing requests: allowCrossSite says why.")
        return
    w.line("# A state-changing request from another site's page (forged in a granted person's browser) is refused.")
    safe = ", ".join(f"'{m}'" for m in SAFE_METHODS)
    origin = "{http.request.header.Origin}"
    fetch_site = "{http.request.header.Sec-Fetch-Site}"
    condition = (
        f"!({{http.request.method}} in [{safe}]) && "
        f"(({origin} != '' && {origin} != {_site_origin(topology)}) || {fetch_site} in ['cross-site', 'same-site'])"
    )
    w.line(f"@cross_site_write expression `{condition}`")
    w.line('header @cross_site_write Content-Type "text/html; charset=utf-8"')
    w.line(f"respond @cross_site_write `{CROSS_SITE_PAGE}` 403")
