"""The gateway (LiteLLM): its replicas, their addresses and their own uids."""

from __future__ import annotations

from dataclasses import dataclass, replace

from policy.gateway_contract import SHARED_UIDS, Role

from ..addresses import HostPort
from ..errors import SettingsError
from ..gateway_process import GatewayProcess, Server, gateway_process
from ..images import ImageRef
from ..settings import Settings
from .containers import Resources, resources_of
from .services import Service

ROLE = Role.GATEWAY
# How far apart the replicas' uids are (see Gateway.replica_resources).
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
    resources: Resources
    image: ImageRef
    server: Server
    replicas: int = 1
    # How long a replica being replaced may finish its requests and streams before it is stopped.
    drain_s: int = 300
    # Where the edge reaches the replicas (host:port).
    addresses: tuple[str, ...] = ()
    # The address LiteLLM's server binds where it runs: every interface of its container's own namespace
    # (the host side is limited to `host_bind` on loopback).
    listen_host: str = "0.0.0.0"

    @property
    def replica_names(self) -> tuple[str, ...]:
        return replica_names(self.service.name, self.replicas)

    @property
    def replica_resources(self) -> tuple[Resources, ...]:
        """Each replica's resources, on a uid of its own: the process limit counts every process of a uid on
        the host, so replicas sharing one would share one budget. The first has the configured uid, the
        next ones that uid plus 100, 200, ..."""
        return tuple(
            replace(
                self.resources,
                uid=self.resources.uid + REPLICA_UID_STEP * i,
                gid=self.resources.gid + REPLICA_UID_STEP * i,
            )
            for i in range(self.replicas)
        )

    def process(self, config_path: str) -> GatewayProcess:
        """How each replica starts: its server, workers, config and where it listens."""
        return gateway_process(self.server, self.workers, config_path, self.listen_host, self.service.port)

    @property
    def local_api_url(self) -> str:
        """Where host apps reach LiteLLM (its loopback port)."""
        return f"http://{self.host_bind}/v1"

    @property
    def replica_binds(self) -> tuple[HostPort, ...]:
        """Each replica's loopback port: the first is `host_bind` (host apps use it), the next ones the ports
        after it, so each replica's metrics (counted in its own memory) can be read from the host."""
        return tuple(HostPort(self.host_bind.host, self.host_bind.port + i) for i in range(self.replicas))

    @property
    def metrics_urls(self) -> tuple[str, ...]:
        """Each replica's Prometheus metrics (behind the master key)."""
        return tuple(f"http://{bind}/metrics/" for bind in self.replica_binds)


def build_gateway(settings: Settings, service: Service) -> Gateway:
    """The gateway's containers; each replica needs a uid no host user, image or the edge shares."""
    if settings.services[service.name].host is not None:
        raise SettingsError(
            f"services.{service.name}.host",
            "the stack runs the gateway and names its containers itself; remove the host",
        )
    replica_uids = [settings.gateway.resources.uid + REPLICA_UID_STEP * i for i in range(settings.gateway.replicas)]
    shared = sorted(SHARED_UIDS.intersection(replica_uids))
    if shared:
        raise SettingsError(
            "gateway.resources.user",
            f"a gateway replica would run as uid {shared[0]} (the uid plus 100 a replica), which host users or "
            "other images share; pick another uid",
        )
    if settings.edge.resources.uid in replica_uids:
        raise SettingsError(
            "edge.resources.user",
            f"uid {settings.edge.resources.uid} is also a gateway replica's (gateway.resources.user, plus 100 a "
            "replica); the process limit counts per uid, so each container needs its own",
        )
    last_port = settings.gateway.bind.port + settings.gateway.replicas - 1
    if last_port > 65535:
        raise SettingsError(
            "gateway.hostBind",
            f"replica {settings.gateway.replicas} would publish port {last_port}; each replica takes the port after "
            "the one before, so pick a lower port",
        )
    return Gateway(
        service=service,
        host_bind=settings.gateway.bind,
        workers=settings.gateway.workers,
        server=settings.gateway.server,
        resources=resources_of(settings.gateway.resources),
        image=settings.gateway.image_ref,
        replicas=settings.gateway.replicas,
        drain_s=settings.timeouts.drain,
        addresses=tuple(
            str(HostPort(name, service.port)) for name in replica_names(service.name, settings.gateway.replicas)
        ),
    )
