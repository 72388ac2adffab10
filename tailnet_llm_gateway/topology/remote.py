"""Backends on other machines of the tailnet, and how LiteLLM reaches them in both exposure modes.

LiteLLM never dials another machine itself. The edge has one forwarder per remote service: a listener on
its container network that accepts only LiteLLM's requests (the edge's own key) and proxies them to that
one machine and port. host-bind: the edge's container dials the machine's tailnet address through the
host's routing (tailscale0). tailnet-node: the node runs in userspace networking, so no container can route
into the tailnet; the edge dials through the node's SOCKS5 proxy, and the machine sees the node's tag.
Either way LiteLLM keeps no capability, the forwarder's dial timeout and health checks make a dropped
machine fail fast (so LiteLLM fails over), and the tailnet policy grants exactly those machines and ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..addresses import HostPort
from .services import Service

# The first forwarder's port in the edge's container (each next remote service: the next port).
EDGE_FORWARD_PORT = 9200
# The node's SOCKS5 proxy (tailscaled --socks5-server). It has no authentication, and a dial through it to a
# container address leaves from the node's own address, the one source whose Tailscale identity headers the
# edge believes: whoever reaches it could pose as any tailnet login. So it listens only on a network of its
# own that holds the node and the edge alone, under a name that resolves to the node on that network only.
NODE_SOCKS5_PORT = 1055
EGRESS_NETWORK = "tailnet-egress"
EGRESS_PROXY_HOST = "tailnet-egress-proxy"


@dataclass(frozen=True)
class Forward:
    """The edge's forwarder for one service on another tailnet machine."""

    service: Service
    # Where the edge listens for LiteLLM: every interface of its container (host None), or a loopback
    # address (the local check mode).
    port: int
    host: str | None = None
    # Where the edge's own dialer to the machine listens, on loopback inside the edge: the listener above
    # health-checks the machine through it (Caddy's active checks cannot dial through the node's proxy).
    dialer_port: int = 0

    @property
    def dialer_address(self) -> HostPort:
        return HostPort("127.0.0.1", self.dialer_port)

    @property
    def address(self) -> str:
        """The Caddyfile site address: any Host (LiteLLM names the edge's container); `bind` says where."""
        return f"http://:{self.port}"

    def url(self, edge_host: str) -> str:
        """What LiteLLM dials: the edge's container name on their network, or the loopback address."""
        return f"http://{HostPort(self.host or edge_host, self.port)}"


def build_forwards(services: tuple[Service, ...], first: HostPort | None = None) -> tuple[Forward, ...]:
    """One forwarder per remote service, in name order, on consecutive ports from EDGE_FORWARD_PORT (or
    from `first`, in the local check mode), and then their dialers on the next ports."""
    remote = [s for s in services if s.machine is not None]
    base = first.port if first is not None else EDGE_FORWARD_PORT
    host = first.host if first is not None else None
    return tuple(
        Forward(service=s, port=base + i, host=host, dialer_port=base + len(remote) + i) for i, s in enumerate(remote)
    )


def forward_urls(forwards: tuple[Forward, ...], edge_host: str) -> Mapping[str, str]:
    return {f.service.name: f.url(edge_host) for f in forwards}


def node_egress() -> HostPort:
    """The node's SOCKS5 proxy, as the node listens and the edge dials it on their network of their own."""
    return HostPort(EGRESS_PROXY_HOST, NODE_SOCKS5_PORT)
