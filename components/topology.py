"""The one model of the gateway: services, networks, routes, models, and the edge's site.

`build_topology` turns validated settings into this model and rejects every inconsistency the old
hand-kept files drifted into: a route to a service nobody declared, an upstream Caddy cannot resolve
because it shares no network with it, a model whose backend the gateway cannot reach. Renderers and
components read only this model, never the settings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from policy.gateway_contract import (
    CLIENT_HEADER as CLIENT_HEADER,  # re-exported: the renderers name it from here
)
from policy.gateway_contract import (
    DOCKER_DEFAULT_POOLS,
    EDGE_KEYS_DIR,
    GATEWAY_API_PATHS,
    MASTER_CLIENT_NAME,
    MASTER_KEY_FILE,
    SHARED_UIDS,
    RoutePath,
    caddy_order,
    client_key_file,
    overlaps,
    route_conflicts,
)
from policy.gateway_contract import (
    MASTER_KEY_ENV as MASTER_KEY_ENV,  # re-exported: the containers and renderers name it from here
)

from .addresses import HostPort, is_unspecified
from .errors import SettingsError
from .gateway_process import Server
from .images import ImageRef
from .settings import ContainerLimits, Settings
from .settings.grammar import absolute_directory
from .settings.messages import did_you_mean
from .settings.model import RouteSettings

# The edge answers readiness here, for the gateway and each model backend, without a key or SSO; its
# checks live under READINESS_PATH + "/", so both paths are the edge's own.
READINESS_PATH = "/readyz"
# LiteLLM forwards a readiness check to a backend at this path (+ its index), behind the master key.
BACKEND_CHECK_PATH = "/tailnet-llm-gateway/ready"
# Inside the Caddy container: unprivileged ports, so Caddy needs no capability to bind them.
EDGE_HTTPS_PORT = 8443
EDGE_HEALTH_PORT = 8080
# tailnet-node mode: Tailscale terminates TLS and proxies plain HTTP here, over the edge network.
EDGE_NODE_PORT = 8081
EDGE_CONTAINER = "tailnet-edge"
CERT_MOUNT = "/etc/caddy/certs"
# The master key reaches both containers as MASTER_KEY_ENV (named in policy.gateway_contract).
# LiteLLM's run-time switches, the same in the container and in the live tests.
GATEWAY_ENV = {
    # The admin UI and Swagger are not needed behind the edge; serving less is safer.
    "DISABLE_ADMIN_UI": "True",
    "NO_DOCS": "True",
    # Use the packaged model cost map instead of fetching one from the internet at start.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # The one retry of a failed backend call (router_settings.num_retries) waits 0.1-0.2 s, not LiteLLM's
    # 0.5 s plus up to 0.75 s of jitter: a client learns that a lone backend is down in about half a
    # second instead of two to three (measured), and a second backend takes over as fast.
    "INITIAL_RETRY_DELAY": "0.1",
    "JITTER": "0.1",
}


@dataclass(frozen=True)
class Network:
    name: str
    subnet: str | None
    existing: bool

    @property
    def gateway(self) -> str | None:
        """The first host address, as Docker picks it; stated so an existing network can be compared."""
        if self.subnet is None:
            return None
        return str(next(ipaddress.ip_network(self.subnet).hosts()))


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    networks: tuple[str, ...]

    @property
    def address(self) -> str:
        return str(HostPort(self.host, self.port))

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@dataclass(frozen=True)
class Backend:
    """One deployment of a model: the service that serves it, where, and its share of the requests."""

    service: Service
    api_path: str
    weight: int

    @property
    def api_base(self) -> str:
        return self.service.url + self.api_path


@dataclass(frozen=True)
class Model:
    name: str
    backends: tuple[Backend, ...]
    model_id: str
    timeout: int | None
    stream_timeout: int | None

    @property
    def api_base(self) -> str:
        """The first backend's address (a model with one backend has only that)."""
        return self.backends[0].api_base


@dataclass(frozen=True)
class Client:
    """An API client: its name (in logs and toward LiteLLM), the file in the edge's keys directory that
    holds its key, and the models it may use (None: all)."""

    name: str
    key_file: str
    models: tuple[str, ...] | None
    # Raising it replaces a generated key (rotation); a key set in `clientKeys` is used as it is.
    key_version: int = 1


# Without `clients`, the one client is whoever holds the master key.
MASTER_CLIENT = Client(name=MASTER_CLIENT_NAME, key_file=MASTER_KEY_FILE, models=None)
# Tailnet callers reach LiteLLM as `tailnet:<login>` (`tailnet:tagged-device` for a tagged device).
TAILNET_CLIENT_PREFIX = "tailnet:"


@dataclass(frozen=True)
class Route:
    path: str
    auth: Literal["sso", "bearer", "tailnet", "none"]
    upstream: Service | None
    respond: str | None
    strip_prefix: bool
    forwarded_paths: tuple[str, ...]
    # Bearer routes: where a client may put its key, and which clients may use it.
    key_headers: tuple[str, ...] = ()
    clients: tuple[Client, ...] = ()
    # API routes: which browser origins may call them.
    cors_origins: tuple[str, ...] = ()
    # Tailnet routes: the application capability their callers need, and who the policy grants it.
    capability: str | None = None
    audiences: tuple[str, ...] = ()
    # Whether the upstream is LiteLLM, which gets the master key; any other upstream gets no credential.
    to_gateway: bool = False

    @property
    def is_api(self) -> bool:
        return self.auth in ("bearer", "tailnet")

    @property
    def is_catch_all(self) -> bool:
        return self.path == "/*"

    @property
    def prefix(self) -> str:
        """The path without its trailing `/*` (what handle_path strips)."""
        return self.path[:-2] if self.path.endswith("/*") else self.path


@dataclass(frozen=True)
class Site:
    """Where and how the edge serves.

    host-bind: Caddy terminates TLS for the host's tailnet name with `tailscale cert` files, and the
    host publishes 443 on its tailnet IP. tailnet-node: the Tailscale container terminates TLS for the
    node's name and proxies plain HTTP to Caddy over the edge network. `listen` (render --listen)
    overrides both with plain HTTP on a local address, for checks.
    """

    exposure: Literal["host-bind", "tailnet-node"]
    tailnet_host: str
    tailnet_ip: str | None = None
    cert_dir: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    listen: HostPort | None = None

    @property
    def address(self) -> str:
        if self.listen is not None:
            return f"http://{self.listen}"
        if self.exposure == "tailnet-node":
            # Any Host: only the Tailscale container can reach this port, and it serves one name.
            return f"http://:{EDGE_NODE_PORT}"
        return f"https://{self.tailnet_host}:{EDGE_HTTPS_PORT}"

    @property
    def terminates_tls(self) -> bool:
        return self.listen is None and self.exposure == "host-bind"

    @property
    def redirect_base(self) -> str:
        """The scheme and host of URLs sent back to browsers (the SSO redirect)."""
        if self.listen is None and self.exposure == "tailnet-node":
            # Caddy sees plain HTTP from the node; browsers only ever see the node's HTTPS name.
            return f"https://{self.tailnet_host}"
        return "{scheme}://{hostport}"

    @property
    def node_hostname(self) -> str:
        return self.tailnet_host.split(".")[0]

    @property
    def public_base_url(self) -> str:
        return f"http://{self.listen}" if self.listen is not None else f"https://{self.tailnet_host}"


@dataclass(frozen=True)
class Sso:
    service: Service
    auth_path: str
    start_path: str
    copy_headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Limits:
    """What one container may use, and the uid it runs as: one of its own, since the process limit
    (nproc) counts every process of a uid on the host."""

    memory_mb: int
    pids: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"


# How far apart the replicas' uids are (see Gateway.replica_limits).
REPLICA_UID_STEP = 100


def replica_names(service: str, replicas: int) -> tuple[str, ...]:
    """The containers of a gateway with `replicas`: the service's own name, then `<service>-2`, ..."""
    return (service, *(f"{service}-{index}" for index in range(2, replicas + 1)))


@dataclass(frozen=True)
class Gateway:
    """The LiteLLM containers this stack runs: `replicas` of them, the first named after the service (it
    also publishes the host port), the others `<service>-2`, `<service>-3`, ..."""

    service: Service
    host_bind: HostPort
    workers: int
    limits: Limits
    image: ImageRef
    server: Server
    replicas: int = 1
    # How long a replica being replaced may finish its requests and streams before it is stopped.
    drain_s: int = 300
    # Where the edge reaches the replicas (host:port); the local check mode moves them all to one address.
    addresses: tuple[str, ...] = ()

    @property
    def replica_names(self) -> tuple[str, ...]:
        return replica_names(self.service.name, self.replicas)

    @property
    def replica_limits(self) -> tuple[Limits, ...]:
        """Each replica's limits, on a uid of its own: the process limit counts every process of a uid on
        the host, so replicas sharing one would share one budget. The first has the configured uid, the
        next ones that uid plus 100, 200, ..."""
        return tuple(
            replace(self.limits, uid=self.limits.uid + REPLICA_UID_STEP * i, gid=self.limits.gid + REPLICA_UID_STEP * i)
            for i in range(self.replicas)
        )

    @property
    def local_api_url(self) -> str:
        """Where host apps reach LiteLLM (its loopback port)."""
        return f"http://{self.host_bind}/v1"


@dataclass(frozen=True)
class Edge:
    """The Caddy container: on one network, publishing `https_port` in host-bind mode, with its keys in
    files under `keys_dir` (the local check mode points it at a directory of the test's)."""

    network: str
    https_port: int
    limits: Limits
    image: ImageRef
    keys_dir: str = EDGE_KEYS_DIR
    # How long a reload lets the previous config finish its requests (Caddy's grace_period), and how long
    # the edge may drain when it is replaced itself.
    grace_s: int = 1800
    drain_s: int = 300


@dataclass(frozen=True)
class Node:
    """The gateway's own Tailscale node (tailnet-node mode): a container that joins as `hostname`."""

    hostname: str
    tag: str
    network: str
    image: ImageRef
    auth_key_reusable: bool
    auth_key_expiry_days: int
    limits: Limits
    # Its fixed address on the edge network, the only source whose Tailscale-* headers the edge trusts
    # (None when the edge network has no pinned subnet: then the edge trusts none).
    address: str | None = None


@dataclass(frozen=True)
class TailnetAccess:
    """Who on the tailnet may reach the edge, and how the policy names the gateway's device.

    The gateway's own node (tailnet-node) and a host tagged by the stack (`tagDevice`) carry the tag, so
    grants and tests name the tag. A host-bind host without the tag is named by a `hosts` entry for its
    tailnet address: a grant to a tag no device carries would control nothing.
    """

    tag: str
    # A hosts alias and its address when the gateway's device does not carry the tag.
    host_entry: tuple[str, str] | None
    owners: tuple[str, ...]
    audiences: tuple[str, ...]
    port: int
    # Ports on the gateway host that no one on the tailnet may reach (checked by the policy tests).
    closed_ports: tuple[int, ...]
    members: tuple[str, ...]
    outsiders: tuple[str, ...]
    # The user's policy file to merge into, relative to the project directory.
    base_path: str | None
    # Apply the policy with the Tailscale provider (never replacing an edited policy unless told), and
    # tag the host device of this name with the gateway tag.
    manage: bool
    overwrite_existing: bool
    tagged_device: str | None
    # (capability, audiences) of each tailnet route: the policy grants the capability to those audiences.
    capabilities: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def target(self) -> str:
        """What grants and tests name as the gateway: the tag, or the host's alias."""
        return self.host_entry[0] if self.host_entry else self.tag


@dataclass(frozen=True)
class Topology:
    site: Site
    edge: Edge
    node: Node | None
    networks: tuple[Network, ...]
    services: tuple[Service, ...]
    gateway: Gateway
    models: tuple[Model, ...]
    routes: tuple[Route, ...]
    sso: Sso | None
    request_timeout: int
    stream_timeout: int
    tailnet: TailnetAccess
    # The named API clients (empty: the master key is the one client).
    clients: tuple[Client, ...] = ()

    @property
    def edge_network(self) -> str:
        return self.edge.network

    @property
    def edge_upstreams(self) -> tuple[Service, ...]:
        """Every service the Caddyfile names, in a stable order."""
        names = {r.upstream.name for r in self.routes if r.upstream is not None}
        if self.sso is not None and any(r.auth == "sso" for r in self.routes):
            names.add(self.sso.service.name)
        return tuple(s for s in self.services if s.name in names)

    @property
    def gateway_networks(self) -> tuple[str, ...]:
        return self.gateway.service.networks

    @property
    def api_routes(self) -> tuple[Route, ...]:
        """The bearer and tailnet routes: the API the stack offers (settings require at least one)."""
        return tuple(r for r in self.routes if r.is_api)

    def base_url(self, route: Route) -> str:
        """What a client sets as its base URL for this API route (for LiteLLM, the OpenAI-style /v1)."""
        prefix = route.prefix if route.strip_prefix else ""
        return f"{self.site.public_base_url}{prefix}" + ("/v1" if route.to_gateway else "")

    def routes_of(self, client: Client) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if client in r.clients)

    def models_of(self, client: Client) -> tuple[str, ...]:
        return client.models if client.models is not None else tuple(m.name for m in self.models)

    @property
    def api_base_url(self) -> str:
        return self.base_url(self.api_routes[0])

    @property
    def local_api_url(self) -> str:
        return self.gateway.local_api_url

    @property
    def readiness_backends(self) -> tuple[Backend, ...]:
        """Every distinct backend address the models use, in a stable order (its index is its check)."""
        seen: dict[str, Backend] = {}
        for model in self.models:
            for backend in model.backends:
                seen.setdefault(backend.api_base, backend)
        return tuple(seen.values())

    def with_overrides(
        self,
        upstreams: Mapping[str, HostPort] | None = None,
        listen: HostPort | None = None,
        node_address: str | None = None,
        keys_dir: str | None = None,
    ) -> Topology:
        """The same topology with services moved to other addresses and/or a local listen address, the
        node's requests from a loopback address, the edge's keys in a local directory.

        Used by the render CLI to run the real binaries on loopback; every place a service is named
        (Caddy upstreams, LiteLLM api_base) follows the override, because all of them read `Service`.
        """
        upstreams = dict(upstreams or {})
        for name in upstreams:
            if name not in {s.name for s in self.services}:
                raise SettingsError(f"--upstream {name}", "is not a declared service")
        moved = {
            s.name: replace(s, host=upstreams[s.name].host, port=upstreams[s.name].port) if s.name in upstreams else s
            for s in self.services
        }

        def relocate(service: Service | None) -> Service | None:
            return None if service is None else moved[service.name]

        site = self.site
        if listen is not None:
            if is_unspecified(listen.host):
                raise SettingsError("--listen", f"{listen} binds every interface; use 127.0.0.1")
            site = replace(site, listen=listen)
        node = self.node
        if node_address is not None:
            if node is None or node.address is None:
                raise SettingsError("--node-address", "only a tailnet-node stack with a pinned edge subnet has one")
            if not ipaddress.ip_address(node_address).is_loopback:
                raise SettingsError("--node-address", f"{node_address} is not a loopback address")
            node = replace(node, address=node_address)
        edge = self.edge
        if keys_dir is not None:
            try:
                edge = replace(edge, keys_dir=absolute_directory(keys_dir).rstrip("/"))
            except ValueError as error:
                raise SettingsError("--keys-dir", str(error)) from None
        return replace(
            self,
            site=site,
            edge=edge,
            node=node,
            services=tuple(moved.values()),
            gateway=replace(
                self.gateway,
                service=moved[self.gateway.service.name],
                addresses=(moved[self.gateway.service.name].address,)
                if self.gateway.service.name in upstreams
                else self.gateway.addresses,
            ),
            models=tuple(
                replace(m, backends=tuple(replace(b, service=moved[b.service.name]) for b in m.backends))
                for m in self.models
            ),
            routes=tuple(replace(r, upstream=relocate(r.upstream)) for r in self.routes),
            sso=None if self.sso is None else replace(self.sso, service=moved[self.sso.service.name]),
        )


def build_topology(settings: Settings) -> Topology:
    """Cross-check the settings and build the model; raise SettingsError on the first inconsistency."""
    networks = _networks(settings)
    services = _services(settings, networks)
    by_name = {s.name: s for s in services}

    gateway_service = _known(by_name, settings.gateway.service, "gateway.service")
    if settings.services[gateway_service.name].host is not None:
        raise SettingsError(
            f"services.{gateway_service.name}.host",
            "the stack runs the gateway and names its containers itself; remove the host",
        )
    replica_uids = [settings.gateway.limits.uid + REPLICA_UID_STEP * i for i in range(settings.gateway.replicas)]
    shared = sorted(SHARED_UIDS.intersection(replica_uids))
    if shared:
        raise SettingsError(
            "gateway.limits.user",
            f"a gateway replica would run as uid {shared[0]} (the uid plus 100 a replica), which host users or "
            "other images share; pick another uid",
        )
    if settings.edge.limits.uid in replica_uids:
        raise SettingsError(
            "edge.limits.user",
            f"uid {settings.edge.limits.uid} is also a gateway replica's (gateway.limits.user, plus 100 a replica); "
            "the process limit counts per uid, so each container needs its own",
        )
    edge_network = settings.edge.network
    if edge_network not in networks:
        raise SettingsError("edge.network", f"{edge_network!r} is not in 'networks'")

    models = tuple(_model(name, settings, by_name, gateway_service) for name in sorted(settings.models))
    clients = _clients(settings)
    routes = _routes(settings, by_name, gateway_service, edge_network, clients)

    sso = None
    if settings.sso.service in by_name:
        sso = Sso(
            service=by_name[settings.sso.service],
            auth_path=settings.sso.auth_path,
            start_path=settings.sso.start_path,
            copy_headers=tuple(sorted(settings.sso.copy_headers.items())),
        )
    _check_sso(settings, routes, sso, edge_network)

    site = _site(settings)
    tag = settings.tailnet_policy.tag
    return Topology(
        site=site,
        edge=Edge(
            network=edge_network,
            https_port=settings.edge.https_port,
            limits=_limits(settings.edge.limits),
            image=settings.edge.image_ref,
            grace_s=settings.timeouts.stream,
            drain_s=settings.timeouts.drain,
        ),
        node=None
        if site.exposure != "tailnet-node"
        else Node(
            hostname=site.node_hostname,
            tag=tag,
            network=edge_network,
            image=settings.node.image_ref,
            auth_key_reusable=settings.node.auth_key_reusable,
            auth_key_expiry_days=settings.node.auth_key_expiry_days,
            # tailscaled runs as root (its state volume is root-owned); this uid is its config writer's.
            limits=Limits(memory_mb=settings.node.memory_mb, pids=settings.node.pids, uid=61003, gid=61003),
            address=_node_address(networks[edge_network]),
        ),
        networks=tuple(networks[name] for name in sorted(networks)),
        services=services,
        gateway=Gateway(
            service=gateway_service,
            host_bind=settings.gateway.bind,
            workers=settings.gateway.workers,
            server=settings.gateway.server,
            limits=_limits(settings.gateway.limits),
            image=settings.gateway.image_ref,
            replicas=settings.gateway.replicas,
            drain_s=settings.timeouts.drain,
            addresses=tuple(
                str(HostPort(name, gateway_service.port))
                for name in replica_names(gateway_service.name, settings.gateway.replicas)
            ),
        ),
        models=models,
        routes=routes,
        sso=sso,
        request_timeout=settings.timeouts.request,
        stream_timeout=settings.timeouts.stream,
        tailnet=TailnetAccess(
            tag=settings.tailnet_policy.tag,
            host_entry=_host_entry(settings),
            owners=settings.tailnet_policy.owners,
            audiences=settings.tailnet_policy.audiences,
            port=settings.edge.https_port,
            closed_ports=tuple(sorted({22, 80, settings.gateway.bind.port} - {settings.edge.https_port})),
            members=settings.tailnet_policy.tests.members,
            outsiders=settings.tailnet_policy.tests.outsiders,
            base_path=settings.tailnet_policy.base,
            manage=settings.tailnet_policy.manage,
            overwrite_existing=settings.tailnet_policy.overwrite_existing,
            tagged_device=settings.tailnet_host if settings.tailnet_policy.tag_device else None,
            capabilities=tuple((r.capability, r.audiences) for r in routes if r.capability is not None),
        ),
        clients=tuple(c for c in clients if c is not MASTER_CLIENT),
    )


def _node_address(network: Network) -> str | None:
    """The last host address of the edge network: Docker hands out addresses from the bottom, so the top
    one stays free for the node to pin."""
    if network.subnet is None:
        return None
    return str(list(ipaddress.ip_network(network.subnet).hosts())[-1])


def _clients(settings: Settings) -> tuple[Client, ...]:
    if not settings.clients:
        return (MASTER_CLIENT,)
    clients = []
    for name in sorted(settings.clients):
        spec = settings.clients[name]
        for index, model in enumerate(spec.models or ()):
            if model not in settings.models:
                raise SettingsError(
                    f"clients.{name}.models[{index}]",
                    f"{model!r} is not a model in 'models'{did_you_mean(model, settings.models)}",
                )
        clients.append(
            Client(name=name, key_file=client_key_file(name), models=spec.models, key_version=spec.key_version)
        )
    return tuple(clients)


def _limits(limits: ContainerLimits) -> Limits:
    return Limits(memory_mb=limits.memory_mb, pids=limits.pids, uid=limits.uid, gid=limits.gid)


def _host_entry(settings: Settings) -> tuple[str, str] | None:
    policy = settings.tailnet_policy
    if settings.exposure == "tailnet-node" or policy.tag_device or settings.tailnet_ip is None:
        return None
    return f"{policy.tag.removeprefix('tag:')}-host", settings.tailnet_ip


def _site(settings: Settings) -> Site:
    if settings.exposure == "tailnet-node":
        for name, value in (("tailnetIp", settings.tailnet_ip), ("tls", settings.tls)):
            if value is not None:
                raise SettingsError(name, "applies only to exposure host-bind; the node has its own address and certs")
        return Site(exposure="tailnet-node", tailnet_host=settings.tailnet_host)
    if settings.tailnet_ip is None:
        raise SettingsError("tailnetIp", "is required when exposure is host-bind (Caddy publishes 443 there)")
    if settings.tls is None:
        raise SettingsError("tls", "is required when exposure is host-bind (Caddy serves the tailscale cert files)")
    return Site(
        exposure="host-bind",
        tailnet_host=settings.tailnet_host,
        tailnet_ip=settings.tailnet_ip,
        cert_dir=settings.tls.cert_dir,
        cert_file=f"{CERT_MOUNT}/{settings.tls.cert_file}",
        key_file=f"{CERT_MOUNT}/{settings.tls.key_file}",
    )


def _networks(settings: Settings) -> dict[str, Network]:
    networks = {}
    for name, net in settings.networks.items():
        if net.existing and net.subnet is not None:
            raise SettingsError(f"networks.{name}.subnet", "an existing network keeps its own subnet; remove it")
        networks[name] = Network(name=name, subnet=_subnet(name, net.subnet), existing=net.existing)
    return networks


def _subnet(name: str, subnet: str | None) -> str | None:
    if subnet is None:
        return None
    try:
        network = ipaddress.ip_network(subnet)
    except ValueError:
        raise SettingsError(f"networks.{name}.subnet", f"{subnet!r} is not a CIDR subnet") from None
    if not network.is_private:
        raise SettingsError(f"networks.{name}.subnet", f"{subnet} is not a private range")
    if network.version != 4:
        raise SettingsError(f"networks.{name}.subnet", f"{subnet} is not an IPv4 range")
    if any(network.overlaps(pool) for pool in DOCKER_DEFAULT_POOLS):
        raise SettingsError(
            f"networks.{name}.subnet",
            f"{subnet} lies in Docker's default address pools (172.17-31.x.x, 192.168.x.x), where Docker puts "
            "the networks it addresses itself; pick a range outside them, such as 10.124.24.0/24",
        )
    return str(network)


def _services(settings: Settings, networks: Mapping[str, Network]) -> tuple[Service, ...]:
    services = []
    for name in sorted(settings.services):
        svc = settings.services[name]
        for index, net in enumerate(svc.networks):
            if net not in networks:
                raise SettingsError(f"services.{name}.networks[{index}]", f"{net!r} is not in 'networks'")
        host = svc.host or name
        services.append(Service(name=name, host=host, port=svc.port, networks=tuple(sorted(set(svc.networks)))))
    return tuple(services)


def _known(by_name: Mapping[str, Service], name: str, setting: str) -> Service:
    if name not in by_name:
        raise SettingsError(
            setting, f"{name!r} is not a declared service (see 'services'){did_you_mean(name, by_name)}"
        )
    return by_name[name]


def _model(name: str, settings: Settings, by_name: Mapping[str, Service], gateway: Service) -> Model:
    spec = settings.models[name]
    if not spec.api_path.startswith("/"):
        raise SettingsError(f"models.{name}.apiPath", f"{spec.api_path!r} must start with '/'")
    backends: list[Backend] = []
    for index, ref in enumerate(spec.backend_refs):
        where = f"models.{name}.backend" if spec.backends is None else f"models.{name}.backends[{index}].service"
        service = _known(by_name, ref.service, where)
        if not set(service.networks) & set(gateway.networks):
            raise SettingsError(
                where, f"{service.name!r} shares no network with {gateway.name!r}; LiteLLM could not reach it"
            )
        if any(b.service.name == service.name for b in backends):
            raise SettingsError(where, f"{service.name!r} is listed twice for {name}")
        backends.append(Backend(service=service, api_path=spec.api_path.rstrip("/"), weight=ref.weight))
    return Model(
        name=name,
        backends=tuple(backends),
        model_id=spec.model,
        timeout=spec.timeout,
        stream_timeout=spec.stream_timeout,
    )


def _routes(
    settings: Settings,
    by_name: Mapping[str, Service],
    gateway: Service,
    edge_network: str,
    clients: tuple[Client, ...],
) -> tuple[Route, ...]:
    _check_route_paths(settings)
    allowed = _clients_by_route(settings, clients)
    routes = []
    for index, spec in enumerate(settings.routes):
        where = f"routes[{index}]"
        upstream = None
        if spec.upstream is not None:
            upstream = _known(by_name, spec.upstream, f"{where}.upstream")
            if edge_network not in upstream.networks:
                raise SettingsError(
                    f"{where}.upstream",
                    f"{upstream.name!r} is not on {edge_network!r}, the edge's network; Caddy could not resolve it",
                )
        to_gateway = upstream is not None and upstream.name == gateway.name
        if spec.auth in ("bearer", "tailnet") and not to_gateway and spec.allow_paths is None:
            raise SettingsError(
                f"{where}.allowPaths",
                f"an API route to {spec.upstream!r} must list the paths it forwards (the default is LiteLLM's API)",
            )
        if spec.auth in ("bearer", "tailnet") and to_gateway and not spec.strip_prefix:
            served = RoutePath(index, None if spec.path == "/*" else spec.path, spec.auth)
            missed = [p for p in GATEWAY_API_PATHS if served.pattern and not overlaps(served, RoutePath(-1, p, "none"))]
            if missed:
                raise SettingsError(
                    f"{where}.stripPrefix",
                    f"LiteLLM serves its API at {missed[0]} and the like; {spec.path} would hand it other paths: "
                    "set stripPrefix: true",
                )
        for number, path in enumerate(spec.allow_paths or ()):
            if to_gateway and path not in GATEWAY_API_PATHS:
                raise SettingsError(
                    f"{where}.allowPaths[{number}]",
                    f"{path} is not an endpoint API clients may use at LiteLLM; choose from "
                    + ", ".join(GATEWAY_API_PATHS),
                )
        if spec.auth == "bearer" and not allowed.get(spec.path):
            raise SettingsError(where, f"no client in 'clients' may use {spec.path}; list it in a client's routes")
        if spec.auth == "tailnet" and settings.exposure != "tailnet-node":
            raise SettingsError(
                f"{where}.auth",
                "'tailnet' needs exposure tailnet-node: only the gateway's own node can vouch for a caller, "
                "and in host-bind mode nothing trustworthy sets its headers",
            )
        if spec.auth == "tailnet" and settings.networks[edge_network].subnet is None:
            raise SettingsError(
                f"networks.{edge_network}.subnet",
                f"routes[{index}] uses auth 'tailnet', so the edge must know the node's address: pin a subnet",
            )
        if spec.auth == "none" and upstream is not None and upstream.name != settings.sso.service:
            raise SettingsError(
                f"{where}.auth",
                f"'none' is only for health and SSO endpoints; {upstream.name!r} would be reachable without SSO",
            )
        routes.append(
            Route(
                path=spec.path,
                auth=spec.auth,
                upstream=upstream,
                respond=spec.respond,
                strip_prefix=spec.strip_prefix,
                forwarded_paths=_forwarded_paths(spec, to_gateway),
                key_headers=spec.accepted_key_headers,
                clients=allowed.get(spec.path, ()) if spec.auth == "bearer" else (),
                cors_origins=spec.cors_origins,
                capability=_capability(settings, spec) if spec.auth == "tailnet" else None,
                audiences=(spec.audiences or settings.tailnet_policy.audiences) if spec.auth == "tailnet" else (),
                to_gateway=to_gateway,
            )
        )
    if not any(r.is_api and r.to_gateway for r in routes):
        raise SettingsError(
            "routes",
            "no route has auth 'bearer' (or 'tailnet') to the gateway, so the stack would offer no API; add one, "
            f"e.g. {{path: /llm/*, upstream: {gateway.name}, stripPrefix: true, auth: bearer}}",
        )
    # In Caddy's own order for handle blocks, so the Caddyfile reads as Caddy runs it.
    order = caddy_order([None if r.is_catch_all else r.path for r in routes])
    return tuple(routes[i] for i in order)


def _forwarded_paths(spec: RouteSettings, to_gateway: bool) -> tuple[str, ...]:
    """What an API route forwards: its allowPaths, or for LiteLLM the endpoints API clients need."""
    if spec.auth not in ("bearer", "tailnet"):
        return ()
    if spec.allow_paths is not None:
        return spec.allow_paths
    return GATEWAY_API_PATHS if to_gateway else ()


def _clients_by_route(settings: Settings, clients: tuple[Client, ...]) -> dict[str, tuple[Client, ...]]:
    """The clients that may use each bearer route (by path); every client names only bearer routes."""
    bearer = [r.path for r in settings.routes if r.auth == "bearer"]
    allowed: dict[str, list[Client]] = {path: [] for path in bearer}
    for client in clients:
        spec = settings.clients.get(client.name)
        paths = spec.routes if spec is not None and spec.routes is not None else tuple(bearer)
        for index, path in enumerate(paths):
            if path not in allowed:
                raise SettingsError(
                    f"clients.{client.name}.routes[{index}]",
                    f"{path!r} is not the path of a bearer route{did_you_mean(path, bearer)}",
                )
            allowed[path].append(client)
    return {path: tuple(found) for path, found in allowed.items()}


def _capability(settings: Settings, spec: RouteSettings) -> str:
    if spec.capability is not None:
        return spec.capability
    slug = spec.path.strip("/*").replace("/", "-") or "root"
    return f"{settings.tailnet_host}/cap/{slug}"


def _check_route_paths(settings: Settings) -> None:
    """Two routes that can match one request must be resolved by Caddy the way the settings mean."""
    paths = [RoutePath(i, None if r.path == "/*" else r.path, r.auth) for i, r in enumerate(settings.routes)]
    reserved = (RoutePath(-1, READINESS_PATH, "none"), RoutePath(-1, READINESS_PATH + "/*", "none"))
    for path in paths:
        if path.pattern is not None and any(overlaps(path, r) for r in reserved):
            raise SettingsError(
                f"routes[{path.index}].path", f"{path.pattern} meets {READINESS_PATH}, the edge's readiness report"
            )
    catch_alls = [p.index for p in paths if p.pattern is None]
    if len(catch_alls) > 1:
        raise SettingsError(f"routes[{catch_alls[1]}].path", f"/* is already the catch-all of routes[{catch_alls[0]}]")
    for route, problem in route_conflicts(paths):
        raise SettingsError(f"routes[{route.index}].path", problem)


def _check_sso(settings: Settings, routes: tuple[Route, ...], sso: Sso | None, edge_network: str) -> None:
    if not any(r.auth == "sso" for r in routes):
        return
    if sso is None:
        raise SettingsError("sso.service", f"{settings.sso.service!r} is not a declared service (see 'services')")
    if edge_network not in sso.service.networks:
        raise SettingsError(
            "sso.service", f"{sso.service.name!r} is not on {edge_network!r}; forward_auth could not reach it"
        )
    # The sign-in redirect must land on a route that reaches the SSO service without SSO itself,
    # or every protected page would redirect to another protected page.
    start = sso.start_path
    covering = [
        r
        for r in routes
        if r.auth == "none"
        and r.upstream is not None
        and r.upstream.name == sso.service.name
        and (r.path == start or (r.path.endswith("/*") and start.startswith(r.prefix + "/")))
    ]
    if not covering:
        raise SettingsError(
            "sso.startPath",
            f"no route with auth 'none' sends {start} to {sso.service.name!r}; sign-in would loop",
        )
