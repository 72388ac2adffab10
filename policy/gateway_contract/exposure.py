"""How the edge is exposed on the tailnet."""

from __future__ import annotations

from typing import Literal

# host-bind: Caddy publishes its HTTPS port on the host's tailnet address. tailnet-node: the gateway has
# its own Tailscale node, which terminates TLS and proxies to Caddy; no host port leads to the edge.
Exposure = Literal["host-bind", "tailnet-node"]
HOST_BIND: Exposure = "host-bind"
TAILNET_NODE: Exposure = "tailnet-node"
