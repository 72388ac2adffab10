"""The one model of the gateway: services, networks, routes, models, clients, the edge, the gateway, the
node and who on the tailnet may reach them. One module a part, each with its dataclass and its checks:

- services: networks, services, models and their backends;
- clients, routes, sso: who may call what, by which path and auth;
- edge, gateway, node: the containers (containers: what each may use);
- remote: the edge's forwarders to services on other tailnet machines;
- tailnet: who the tailnet policy lets in;

`build_topology` assembles the parts from validated settings; each part's builder rejects the
inconsistencies the old hand-kept files drifted into (a route to a service nobody declared, an upstream
Caddy cannot resolve because it shares no network with it, a model whose backend the gateway cannot
reach). Renderers and components read only this model, never the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from policy.gateway_contract import EDGE_KEY_FILE, SSO, TAILNET, TAILNET_NODE

from ..addresses import HostPort
from ..errors import SettingsError
from ..settings import Settings
from .clients import MASTER_CLIENT, Client, RateLimits, build_clients
from .containers import Resources
from .edge import (
    BACKEND_CHECK_PATH,
    CERT_MOUNT,
    EDGE_CONTAINER,
    EDGE_HEALTH_PORT,
    EDGE_HTTPS_PORT,
    EDGE_METRICS_PORT,
    EDGE_NODE_PORT,
    EDGE_SITE_ALIAS,
    READINESS_PATH,
    Edge,
    Site,
    build_edge,
    build_site,
)
from .gateway import REPLICA_UID_STEP, Gateway, build_gateway, replica_names
from .node import NODE_CONTAINER, Node, build_node
from .remote import (
    EDGE_FORWARD_PORT,
    EGRESS_NETWORK,
    EGRESS_PROXY_HOST,
    NODE_SOCKS5_PORT,
    Forward,
    build_forwards,
    forward_urls,
    node_egress,
)
from .routes import Route, build_routes
from .services import (
    Backend,
    Machine,
    Model,
    Network,
    Service,
    build_machines,
    build_model,
    build_networks,
    build_services,
    known,
)
from .sso import Sso, build_sso
from .tailnet import TailnetAccess, build_tailnet

__all__ = [
    "BACKEND_CHECK_PATH",
    "CERT_MOUNT",
    "EDGE_CONTAINER",
    "EDGE_SITE_ALIAS",
    "EDGE_FORWARD_PORT",
    "EGRESS_NETWORK",
    "EGRESS_PROXY_HOST",
    "EDGE_HEALTH_PORT",
    "EDGE_HTTPS_PORT",
    "EDGE_METRICS_PORT",
    "EDGE_NODE_PORT",
    "MASTER_CLIENT",
    "NODE_CONTAINER",
    "NODE_SOCKS5_PORT",
    "READINESS_PATH",
    "REPLICA_UID_STEP",
    "Backend",
    "Client",
    "Edge",
    "Forward",
    "Gateway",
    "Resources",
    "Machine",
    "Model",
    "Network",
    "Node",
    "RateLimits",
    "Route",
    "Service",
    "Site",
    "Sso",
    "TailnetAccess",
    "Topology",
    "build_topology",
    "replica_names",
]


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
    # What every client gets unless its own limits say otherwise (the master-key client: exactly this),
    # and what each tailnet login gets.
    default_limits: RateLimits = RateLimits()
    tailnet_limits: RateLimits = RateLimits()
    # LiteLLM serves its Prometheus metrics.
    metrics: bool = True
    # The edge's forwarder for each service on another tailnet machine, and the proxy it dials them
    # through (the node's SOCKS5 in tailnet-node mode; None: the host routes them).
    forwards: tuple[Forward, ...] = ()
    egress: HostPort | None = None

    @property
    def edge_network(self) -> str:
        return self.edge.network

    @property
    def edge_upstreams(self) -> tuple[Service, ...]:
        """Every service the Caddyfile names, in a stable order."""
        names = {r.upstream.name for r in self.routes if r.upstream is not None}
        if self.sso is not None and any(r.auth == SSO for r in self.routes):
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
        return tuple(r for r in self.routes if client in r.access.clients())

    @property
    def edge_key_files(self) -> tuple[tuple[str, Client | None], ...]:
        """The edge's key files and whose key each holds: its own toward LiteLLM (None), and what it compares:
        each named client's key, or with none the master key (the one client's)."""
        return ((EDGE_KEY_FILE, None), *((c.key_file, c) for c in self.clients or (MASTER_CLIENT,)))

    def rate_limits_of(self, client: Client) -> RateLimits:
        return self.default_limits if client is MASTER_CLIENT else client.limits

    @property
    def limited(self) -> bool:
        """Some caller has a limit: LiteLLM counts each caller's use (and the edge sends each to one replica)."""
        callers = self.clients or (MASTER_CLIENT,)
        tailnet = self.tailnet_limits.any and any(r.auth == TAILNET and r.to_gateway for r in self.routes)
        return tailnet or any(self.rate_limits_of(c).any for c in callers)

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


def _remote_serves_models_only(settings: Settings, services: tuple[Service, ...]) -> None:
    """A service on another machine is reached only through a forwarder LiteLLM uses: it may be a model's
    backend, never the gateway, the SSO service or a route's upstream."""
    remote = {s.name: s.machine for s in services if s.machine is not None}
    uses = [("gateway.service", settings.gateway.service)]
    if any(r.auth == SSO for r in settings.routes):
        uses.append(("sso.service", settings.sso.service))
    uses += [(f"routes[{i}].upstream", r.upstream) for i, r in enumerate(settings.routes) if r.upstream]
    for setting, name in uses:
        machine = remote.get(name or "")
        if machine is not None:
            raise SettingsError(
                setting,
                f"{name!r} runs on {machine.name}, another tailnet machine; the edge serves only this host's "
                "containers, and a remote service may only be a model's backend",
            )


def _forwards(settings: Settings, services: tuple[Service, ...], gateway: Gateway, edge: Edge) -> tuple[Forward, ...]:
    forwards = build_forwards(services)
    if forwards and edge.network not in gateway.service.networks:
        raise SettingsError(
            f"services.{gateway.service.name}.networks",
            f"LiteLLM reaches {forwards[0].service.name!r} on another machine through the edge; put it on the "
            f"edge's network {edge.network!r} too",
        )
    return forwards


def build_topology(settings: Settings) -> Topology:
    """Cross-check the settings and build the model; raise SettingsError on the first inconsistency."""
    networks = build_networks(settings)
    services = build_services(settings, networks, build_machines(settings))
    _remote_serves_models_only(settings, services)
    by_name = {s.name: s for s in services}
    gateway = build_gateway(settings, known(by_name, settings.gateway.service, "gateway.service"))
    edge = build_edge(settings, networks)
    forwards = _forwards(settings, services, gateway, edge)
    urls = forward_urls(forwards, EDGE_CONTAINER)
    models = tuple(build_model(name, settings, by_name, gateway.service, urls) for name in sorted(settings.models))
    clients = build_clients(settings)
    routes = build_routes(settings, by_name, gateway.service, edge.network, clients)
    site = build_site(settings)
    egress = node_egress() if forwards and site.exposure == TAILNET_NODE else None
    if egress is not None:
        if EGRESS_NETWORK in networks:
            raise SettingsError(
                f"networks.{EGRESS_NETWORK}", "is the name of the node's own network for its SOCKS5 proxy: rename it"
            )
        networks = {**networks, EGRESS_NETWORK: Network(EGRESS_NETWORK, None, existing=False, internal=True)}
        edge = replace(edge, egress_network=EGRESS_NETWORK)
    topology = Topology(
        site=site,
        edge=edge,
        node=build_node(
            settings, site.node_hostname, networks[edge.network], egress, EGRESS_NETWORK if egress else None
        )
        if site.exposure == TAILNET_NODE
        else None,
        networks=tuple(networks[name] for name in sorted(networks)),
        services=services,
        gateway=gateway,
        models=models,
        routes=routes,
        sso=build_sso(settings, by_name, routes, edge.network),
        request_timeout=settings.timeouts.request,
        stream_timeout=settings.timeouts.stream,
        tailnet=build_tailnet(settings, routes, services),
        clients=tuple(c for c in clients if c is not MASTER_CLIENT),
        default_limits=RateLimits.of(settings.limits.clients),
        tailnet_limits=RateLimits.of(settings.limits.tailnet),
        metrics=settings.gateway.metrics,
        forwards=forwards,
        egress=egress,
    )
    if topology.limited and gateway.workers > 1:
        raise SettingsError(
            "gateway.workers",
            f"LiteLLM counts each caller's limits in each process; with {gateway.workers} workers a client could "
            "use that many times its limits. Use 1 worker (and more replicas)",
        )
    return topology
