"""Topology -> the serve config of the gateway's Tailscale node (tailnet-node mode). Pure.

The node answers HTTPS on 443 for its own name (Tailscale issues the certificate) and proxies every
request to Caddy over the edge network, with the caller's identity (Tailscale-User-* for user devices)
and, for tailnet routes, the caller's granted capabilities. No Funnel: the gateway is never on the
public internet.
"""

from __future__ import annotations

import json
from typing import Any

from ..topology import EDGE_NODE_PORT, EDGE_SITE_ALIAS, Topology

# containerboot replaces this with the node's own name when it loads the file.
CERT_DOMAIN = "${TS_CERT_DOMAIN}"


def serve_config(topology: Topology) -> dict[str, Any]:
    site = f"{CERT_DOMAIN}:{topology.tailnet.port}"
    # The edge by its alias on the edge network (that network's address, from the node's pinned one).
    handler: dict[str, Any] = {"Proxy": f"http://{EDGE_SITE_ALIAS}:{EDGE_NODE_PORT}"}
    capabilities = sorted({capability for capability, _ in topology.tailnet.capabilities})
    if capabilities:
        # serve puts the caller's grants of these capabilities in Tailscale-App-Capabilities (as JSON),
        # after dropping any copy the caller sent; the edge's tailnet routes read it.
        handler["AcceptAppCaps"] = capabilities
    return {
        "TCP": {str(topology.tailnet.port): {"HTTPS": True}},
        "Web": {site: {"Handlers": {"/": handler}}},
        "AllowFunnel": {site: False},
    }


def render_serve_config(topology: Topology) -> str:
    return json.dumps(serve_config(topology), indent=2, sort_keys=True) + "\n"
