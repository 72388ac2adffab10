"""The gateway's own Tailscale node (tailnet-node mode)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from policy.gateway_contract import Role

from ..addresses import HostPort
from ..images import ImageRef
from ..settings import Settings
from .containers import Resources
from .services import Network

ROLE = Role.NODE
# The node's container is named after its role (it joins the tailnet under the site's host name).
NODE_CONTAINER = Role.NODE
# tailscaled runs as root (its state volume is root-owned); this uid is its config writer's.
NODE_WRITER_UID = 61003


@dataclass(frozen=True)
class Node:
    """The gateway's own Tailscale node (tailnet-node mode): a container that joins as `hostname`."""

    hostname: str
    tag: str
    network: str
    image: ImageRef
    auth_key_reusable: bool
    auth_key_expiry_days: int
    resources: Resources
    # Its fixed address on the edge network, the only source whose Tailscale-* headers the edge trusts
    # (None when the edge network has no pinned subnet: then the edge trusts none).
    address: str | None = None
    # Its SOCKS5 proxy into the tailnet, when the edge forwards to other machines through it (None: no proxy
    # runs), and the network it listens on, which only the node and the edge share.
    socks5: HostPort | None = None
    egress_network: str | None = None
    # The control server it joins (None: Tailscale's).
    login_server: str | None = None


def node_address(network: Network) -> str | None:
    """The last host address of the edge network: Docker hands out addresses from the bottom, so the top
    one stays free for the node to pin."""
    if network.subnet is None:
        return None
    return str(list(ipaddress.ip_network(network.subnet).hosts())[-1])


def build_node(
    settings: Settings, hostname: str, edge_network: Network, socks5: HostPort | None, egress_network: str | None
) -> Node:
    return Node(
        hostname=hostname,
        tag=settings.tailnet_policy.tag,
        network=edge_network.name,
        image=settings.node.image_ref,
        auth_key_reusable=settings.node.auth_key_reusable,
        auth_key_expiry_days=settings.node.auth_key_expiry_days,
        resources=Resources(
            memory_mb=settings.node.memory_mb, pids=settings.node.pids, uid=NODE_WRITER_UID, gid=NODE_WRITER_UID
        ),
        address=node_address(edge_network),
        socks5=socks5,
        egress_network=egress_network,
        login_server=settings.node.login_server,
    )
