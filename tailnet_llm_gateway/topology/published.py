"""The ports the stack publishes on the host, and where: what the diagram draws and the pre-flight check
finds free (the Docker components publish the same)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..addresses import HostPort
from .edge import EDGE_CONTAINER, EDGE_HTTPS_PORT

if TYPE_CHECKING:
    from . import Topology


@dataclass(frozen=True)
class PublishedPort:
    """A host address and port, and the container port it leads to."""

    bind: HostPort
    container: str
    container_port: int
    # The setting that chooses the host port.
    setting: str


def published_ports(topology: Topology) -> tuple[PublishedPort, ...]:
    """host-bind: the edge's HTTPS port on the tailnet address; always: each LiteLLM replica on loopback."""
    published = []
    site = topology.site
    if site.tailnet_ip is not None:
        bind = HostPort(site.tailnet_ip, topology.edge.https_port)
        published.append(PublishedPort(bind, EDGE_CONTAINER, EDGE_HTTPS_PORT, "edge.httpsPort"))
    gateway = topology.gateway
    for name, bind in zip(gateway.replica_names, gateway.replica_binds, strict=True):
        published.append(PublishedPort(bind, name, gateway.service.port, "gateway.hostBind"))
    return tuple(published)
