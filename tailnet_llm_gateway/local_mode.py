"""The local check mode: the same topology with its services on loopback, for running the real binaries.

Used by the render CLI (--upstream, --listen, --node-address, --keys-dir) so the live tests and the
benchmark run Caddy and LiteLLM with the files the stack would deploy, only moved.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .addresses import HostPort, is_unspecified
from .errors import SettingsError
from .settings.grammar import absolute_directory
from .topology.edge import EDGE_CONTAINER, EDGE_METRICS_PORT, REQUEST_ORIGIN, Listener
from .topology.remote import Forward, build_forwards, forward_urls
from .topology.services import Service

if TYPE_CHECKING:
    from .topology import Topology


@dataclass(frozen=True)
class LocalMode:
    """What the local check mode moves (render --upstream, --listen, --node-address, --keys-dir,
    --metrics-listen, --forward-listen, --egress-proxy): services (and the gateway's other replicas) to
    other addresses, the site to a local listen address, the node's requests to a loopback address, the
    edge's keys to a local directory, its metrics to a loopback address, its forwarders to other machines
    to loopback ports (the first here, the next ones after it) and the node's SOCKS5 proxy to a loopback
    address. Nothing set: the topology as deployed."""

    upstreams: Mapping[str, HostPort] = field(default_factory=dict)
    listen: HostPort | None = None
    node_address: str | None = None
    keys_dir: str | None = None
    metrics_listen: HostPort | None = None
    forward_listen: HostPort | None = None
    egress: HostPort | None = None

    def keys_default(self, directory: Path) -> LocalMode:
        """Listening here, the edge reads its keys from `directory` unless --keys-dir says otherwise."""
        if self.listen is None or self.keys_dir is not None:
            return self
        return replace(self, keys_dir=str(directory.resolve()))

    def __bool__(self) -> bool:
        moved = (self.listen, self.node_address, self.keys_dir, self.metrics_listen, self.forward_listen, self.egress)
        return bool(self.upstreams) or any(value is not None for value in moved)


def with_overrides(topology: Topology, local: LocalMode | None) -> Topology:
    """The same topology moved as `local` says.

    Used by the render CLI to run the real binaries on loopback; every place a service is named
    (Caddy upstreams, LiteLLM api_base) follows the override, because all of them read `Service`. Nothing
    set (None or an empty LocalMode): the topology as deployed, unchanged.
    """
    if not local:
        return topology
    upstreams = dict(local.upstreams)
    gateway = topology.gateway
    # The gateway's other replicas may be moved too (`model-gateway-2=...`), each to its own address.
    replicas = {name: upstreams.pop(name) for name in gateway.replica_names[1:] if name in upstreams}
    for name in upstreams:
        if name not in {s.name for s in topology.services}:
            raise SettingsError(f"--upstream {name}", "is not a declared service or gateway replica")
    if replicas and gateway.service.name not in upstreams:
        raise SettingsError(f"--upstream {min(replicas)}", f"moves a replica; move {gateway.service.name} too")
    moved = {
        s.name: replace(s, host=upstreams[s.name].host, port=upstreams[s.name].port) if s.name in upstreams else s
        for s in topology.services
    }

    def relocate(service: Service | None) -> Service | None:
        return None if service is None else moved[service.name]

    site, edge = topology.site, topology.edge
    if local.listen is not None:
        if is_unspecified(local.listen.host):
            raise SettingsError("--listen", f"{local.listen} binds every interface; use 127.0.0.1")
        # Plain HTTP on the loopback address, no certificates; URLs sent back are the request's own; no
        # container, so no container healthcheck listener.
        site = replace(
            site,
            listener=Listener(f"http://{local.listen}", local.listen.host),
            public_base_url=f"http://{local.listen}",
            redirect_base=REQUEST_ORIGIN,
            tls_files=None,
        )
        edge = replace(edge, health=None)
    node = topology.node
    if local.node_address is not None:
        if node is None or node.address is None:
            raise SettingsError("--node-address", "only a tailnet-node stack with a pinned edge subnet has one")
        if not ipaddress.ip_address(local.node_address).is_loopback:
            raise SettingsError("--node-address", f"{local.node_address} is not a loopback address")
        node = replace(node, address=local.node_address)
    if local.keys_dir is not None:
        try:
            keys_dir = absolute_directory(local.keys_dir).rstrip("/")
        except ValueError as error:
            raise SettingsError("--keys-dir", str(error)) from None
        # On this host each edge's admin socket is its own (named after its keys), on a short path: a unix
        # socket's path has at most 107 bytes.
        socket = f"/tmp/tlg-caddy-admin-{hashlib.sha256(keys_dir.encode()).hexdigest()[:12]}.sock"
        edge = replace(edge, keys_dir=keys_dir, admin_socket=socket)
    metrics = local.metrics_listen
    if metrics is None and local.listen is not None:
        # Checked on this host: the metrics stay on loopback like everything else, never on every interface.
        metrics = HostPort(local.listen.host, EDGE_METRICS_PORT)
    if metrics is not None:
        metrics = _loopback("--metrics-listen", metrics)
        edge = replace(edge, metrics=Listener(f"http://{metrics}", metrics.host))
    forwards, egress = _forwarding(topology, local, moved)
    urls = forward_urls(forwards, EDGE_CONTAINER)
    return replace(
        topology,
        site=site,
        edge=edge,
        node=node,
        services=tuple(moved.values()),
        gateway=replace(
            topology.gateway,
            service=moved[topology.gateway.service.name],
            addresses=_replica_addresses(topology, moved[gateway.service.name], replicas)
            if gateway.service.name in upstreams
            else gateway.addresses,
            # Moved, it runs on this host: it listens only where it was moved to.
            listen_host=upstreams[gateway.service.name].host
            if gateway.service.name in upstreams
            else gateway.listen_host,
        ),
        models=tuple(
            replace(
                m,
                backends=tuple(
                    replace(b, service=moved[b.service.name], via=urls.get(b.service.name)) for b in m.backends
                ),
            )
            for m in topology.models
        ),
        routes=tuple(replace(r, upstream=relocate(r.upstream)) for r in topology.routes),
        sso=None if topology.sso is None else replace(topology.sso, service=moved[topology.sso.service.name]),
        forwards=forwards,
        egress=egress,
    )


def _loopback(flag: str, address: HostPort) -> HostPort:
    if not ipaddress.ip_address(address.host).is_loopback:
        raise SettingsError(flag, f"{address} is not a loopback address")
    return address


def _forwarding(
    topology: Topology, local: LocalMode, moved: Mapping[str, Service]
) -> tuple[tuple[Forward, ...], HostPort | None]:
    """The forwarders to other machines and the node's proxy, moved: a forwarder never listens on every
    interface of a machine that runs the checks."""
    remote = tuple(moved[f.service.name] for f in topology.forwards)
    if local.forward_listen is not None:
        forwards = build_forwards(remote, _loopback("--forward-listen", local.forward_listen))
    elif remote and local.listen is not None:
        raise SettingsError("--forward-listen", "is needed to check a stack with services on other machines locally")
    else:
        forwards = tuple(replace(f, service=s) for f, s in zip(topology.forwards, remote, strict=True))
    egress = topology.egress
    if local.egress is not None:
        if egress is None:
            raise SettingsError("--egress-proxy", "only a tailnet-node stack with services on other machines has one")
        egress = _loopback("--egress-proxy", local.egress)
    elif egress is not None and local.listen is not None:
        raise SettingsError("--egress-proxy", "is needed to check locally how the node reaches other machines")
    return forwards, egress


def _replica_addresses(topology: Topology, first: Service, replicas: Mapping[str, HostPort]) -> tuple[str, ...]:
    """The moved gateway's replicas: the first where the service went, then each other one given (moving
    the service alone leaves one replica)."""
    others = [str(replicas[name]) for name in topology.gateway.replica_names[1:] if name in replicas]
    return (first.address, *others)
