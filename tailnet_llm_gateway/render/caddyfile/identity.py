"""Who a request is from: the snippet that drops identity headers a client sent, and the SSO snippet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policy.gateway_contract import CLIENT_HEADER, markers
from policy.gateway_contract import caddyfile as shapes

if TYPE_CHECKING:
    from ...topology import Topology
    from .writer import Writer

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
    # Who the edge says is calling LiteLLM.
    CLIENT_HEADER,
)


# Headers that say which address a request came from. Caddy sets X-Forwarded-For, -Proto and -Host itself
# (it trusts no proxy's copy); these others would pass as the client wrote them.
CLIENT_ADDRESS_HEADERS = (
    "X-Real-IP",
    "Forwarded",
    "X-Forwarded",
    "Forwarded-For",
    "True-Client-IP",
    "X-Client-IP",
    "Client-IP",
    "X-Cluster-Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Original-Forwarded-For",
    "X-Originating-IP",
)


def identity_snippet(w: Writer, topology: Topology) -> None:
    w.line("# Identity and client-address headers are trusted only from the SSO service, the edge itself and")
    w.line("# the gateway's node: drop whatever a client sent.")
    w.open(shapes.IDENTITY_SNIPPET_HEAD)
    for name in _identity_headers(topology):
        w.line(f"request_header -{name}")
    if node_address(topology) is not None:
        w.line("# Tailscale's identity headers count only when the gateway's node sent them (serve sets them).")
        w.line(shapes.DROP_TAILSCALE_UNLESS_NODE)
        w.line("# So the access log can say which tailnet user called (read when the line is written).")
        w.line("log_append tailnet_user {http.request.header.Tailscale-User-Login}")
    else:
        w.line("# No Tailscale node in front of this edge: nothing here may say who a tailnet caller is.")
        w.line(shapes.DROP_TAILSCALE)
    w.close()


def _identity_headers(topology: Topology) -> list[str]:
    """Every header a client must not set: the fixed identity and address headers, whatever the SSO
    service's answers are copied into, and the headers tailnet browser routes tell their apps who is calling in."""
    copied = [dst for _, dst in topology.sso.copy_headers] if topology.sso is not None else []
    told = [header for r in topology.routes for header in r.access.told_headers()]
    names = [*CLIENT_IDENTITY_HEADERS, *CLIENT_ADDRESS_HEADERS, *copied, *told]
    return list(dict.fromkeys(names))


def node_address(topology: Topology) -> str | None:
    return topology.node.address if topology.node is not None else None


def sso_snippet(w: Writer, topology: Topology) -> None:
    sso = topology.sso
    assert sso is not None
    base = topology.site.redirect_base
    w.line(f"# Ask {sso.service.name} whether the session cookie is valid; copy only its identity headers.")
    w.open(f"({markers.SSO_SNIPPET})")
    w.open(shapes.forward_auth_head(sso.service.address))
    w.line(f"uri {sso.auth_path}")
    w.line("header_up Host {upstream_hostport}")
    w.line("copy_headers " + " ".join(f"{src}>{dst}" for src, dst in sso.copy_headers))
    w.line("# No session: sign in, then come back to the original URL (path and query, before any prefix")
    w.line("# strip), escaped so that a `&` in its query does not end the `rd` parameter.")
    w.line("@unauthenticated status 401")
    w.open("handle_response @unauthenticated")
    w.line(f"redir * {base}{sso.start_path}?rd={base}{{http.request.uri_escaped}} 302")
    w.close()
    w.close()
    w.line("log_append user {http.request.header.X-Forwarded-Email}")
    w.close()


def sso_identity(topology: Topology) -> dict[str, str]:
    """What the SSO service vouched for, set again on the proxied request (see `proxy`)."""
    assert topology.sso is not None
    return {dst: f"{{http.request.header.{dst}}}" for _, dst in topology.sso.copy_headers}
