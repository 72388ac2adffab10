"""The edge (Caddy): where and how it serves (the site), and its container."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from policy.gateway_contract import EDGE_KEYS_DIR, HOST_BIND, TAILNET_NODE, Exposure, Role

from ..addresses import HostPort
from ..errors import SettingsError
from ..images import ImageRef
from ..settings import Settings
from .containers import Resources, resources_of

ROLE = Role.EDGE
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
# The edge's Prometheus metrics: every interface of its container (its Docker network), never published.
EDGE_METRICS_PORT = 9180
EDGE_CONTAINER = "tailnet-edge"
# The edge's name on its own network alone (an alias there), which the node's serve proxies to. A container
# name resolves on every network the container joins: with the node's SOCKS5 network beside the edge
# network, `tailnet-edge` could resolve to the edge's address there, and the node's requests would arrive
# from an address the edge does not trust. An alias resolves on its network only.
EDGE_SITE_ALIAS = "tailnet-edge-site"
CERT_MOUNT = "/etc/caddy/certs"
# The origin of the request itself, as Caddy's placeholders say it.
REQUEST_ORIGIN = "{scheme}://{hostport}"


@dataclass(frozen=True)
class Listener:
    """A Caddy site address, and the one host it binds (None: every interface of its container)."""

    address: str
    bind: str | None = None


@dataclass(frozen=True)
class Site:
    """Where and how the edge serves.

    host-bind: Caddy terminates TLS for the host's tailnet name with `tailscale cert` files, and the
    host publishes 443 on its tailnet IP. tailnet-node: the Tailscale container terminates TLS for the
    node's name and proxies plain HTTP to Caddy over the edge network.
    """

    exposure: Exposure
    tailnet_host: str
    listener: Listener
    # Where clients reach it, and the scheme and host of URLs sent back to browsers (the SSO redirect):
    # a fixed origin, or Caddy's placeholders for the request's own.
    public_base_url: str
    redirect_base: str
    tailnet_ip: str | None = None
    cert_dir: str | None = None
    # host-bind: the certificate and key files Caddy serves (mounted read-only).
    tls_files: tuple[str, str] | None = None
    # Each response closes its connection, so the one client (the node's serve) keeps none idle: a reload
    # closes idle connections, and a request serve sends on one just as it closes is lost, since Go's
    # client sends a request with a body (a completion) only once. A new connection costs the node a
    # dial on the edge network; a client of host-bind mode sees the close itself and its SDK retries.
    one_request_per_connection: bool = False

    @property
    def node_hostname(self) -> str:
        return self.tailnet_host.split(".")[0]


@dataclass(frozen=True)
class Edge:
    """The Caddy container: on one network, publishing `https_port` in host-bind mode, with its keys in
    files under `keys_dir`."""

    network: str
    https_port: int
    resources: Resources
    image: ImageRef
    keys_dir: str = EDGE_KEYS_DIR
    # How long a reload lets the previous config finish its requests (Caddy's grace_period), and how long
    # the edge may drain when it is replaced itself.
    grace_s: int = 1800
    drain_s: int = 300
    # Where the edge serves its Prometheus metrics: every interface of its container (its Docker network,
    # never published).
    metrics: Listener = Listener(f"http://:{EDGE_METRICS_PORT}")
    # Its container healthcheck's listener, on the container's own loopback (None: no container).
    health: HostPort | None = HostPort("127.0.0.1", EDGE_HEALTH_PORT)
    # The network it shares with the node alone, to dial through the node's SOCKS5 proxy (tailnet-node mode
    # with services on other machines).
    egress_network: str | None = None
    # Caddy's admin API: a unix socket in the container's own /tmp, which only `pulumi up`'s live-config step
    # uses (`docker exec ... caddy reload`), to load a Caddyfile its config writer has finished writing.
    admin_socket: str = "/tmp/caddy-admin.sock"
    # A reload hands queued connections to the new config (the kernel's tcp_migrate_req) instead of resetting them.
    migrate_on_reload: bool = True


def build_site(settings: Settings) -> Site:
    if settings.exposure == TAILNET_NODE:
        for name, value in (("tailnetIp", settings.tailnet_ip), ("tls", settings.tls)):
            if value is not None:
                raise SettingsError(name, "applies only to exposure host-bind; the node has its own address and certs")
        return Site(
            exposure=TAILNET_NODE,
            tailnet_host=settings.tailnet_host,
            # Any Host: only the Tailscale container can reach this port, and it serves one name.
            listener=Listener(f"http://:{EDGE_NODE_PORT}"),
            public_base_url=f"https://{settings.tailnet_host}",
            # Caddy sees plain HTTP from the node; browsers only ever see the node's HTTPS name.
            redirect_base=f"https://{settings.tailnet_host}",
            one_request_per_connection=True,
        )
    if settings.tailnet_ip is None:
        raise SettingsError("tailnetIp", "is required when exposure is host-bind (Caddy publishes 443 there)")
    if settings.tls is None:
        raise SettingsError("tls", "is required when exposure is host-bind (Caddy serves the tailscale cert files)")
    return Site(
        exposure=HOST_BIND,
        tailnet_host=settings.tailnet_host,
        listener=Listener(f"https://{settings.tailnet_host}:{EDGE_HTTPS_PORT}"),
        public_base_url=f"https://{settings.tailnet_host}",
        redirect_base=REQUEST_ORIGIN,
        tailnet_ip=settings.tailnet_ip,
        cert_dir=settings.tls.cert_dir,
        tls_files=(f"{CERT_MOUNT}/{settings.tls.cert_file}", f"{CERT_MOUNT}/{settings.tls.key_file}"),
    )


def build_edge(settings: Settings, networks: Collection[str]) -> Edge:
    if settings.edge.network not in networks:
        raise SettingsError("edge.network", f"{settings.edge.network!r} is not in 'networks'")
    return Edge(
        network=settings.edge.network,
        https_port=settings.edge.https_port,
        resources=resources_of(settings.edge.resources),
        image=settings.edge.image_ref,
        grace_s=settings.timeouts.stream,
        drain_s=settings.timeouts.drain,
        migrate_on_reload=settings.edge.migrate_connections_on_reload,
    )
