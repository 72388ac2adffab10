"""Services, the Docker networks they are on, and the models LiteLLM serves from them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from policy.gateway_contract import DOCKER_DEFAULT_POOLS

from ..addresses import HostPort
from ..errors import SettingsError
from ..settings import Settings
from ..settings.messages import did_you_mean


@dataclass(frozen=True)
class Network:
    name: str
    subnet: str | None
    existing: bool
    # No route out of it (the node's SOCKS5 network): its containers reach each other only.
    internal: bool = False

    @property
    def gateway(self) -> str | None:
        """The first host address, as Docker picks it; stated so an existing network can be compared."""
        if self.subnet is None:
            return None
        return str(next(ipaddress.ip_network(self.subnet).hosts()))


@dataclass(frozen=True)
class Machine:
    """Another machine of the tailnet: its name in the tailnet policy (a `hosts` alias) and its address."""

    name: str
    address: str


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    networks: tuple[str, ...]
    # Set for a server on another tailnet machine (then `host` is that machine's address, and no Docker
    # network holds it).
    machine: Machine | None = None

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
    # Where LiteLLM sends this backend's requests when it cannot dial the service itself (one on another
    # tailnet machine: the edge's forwarder for it).
    via: str | None = None

    @property
    def api_base(self) -> str:
        return (self.via or self.service.url) + self.api_path


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


def build_networks(settings: Settings) -> dict[str, Network]:
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


# Ports below this are the machine's own system services (SSH on 22 first); the policy never grants the
# gateway one of them on another machine, and no model server needs one.
LOWEST_REMOTE_PORT = 1024


def build_machines(settings: Settings) -> dict[str, Machine]:
    machines: dict[str, Machine] = {}
    for name in sorted(settings.machines):
        address = settings.machines[name].address
        if address == settings.tailnet_ip:
            raise SettingsError(f"machines.{name}.address", f"{address} is the gateway host's own tailnet address")
        twin = next((m for m in machines.values() if m.address == address), None)
        if twin is not None:
            raise SettingsError(f"machines.{name}.address", f"{address} is also the address of {twin.name!r}")
        machines[name] = Machine(name=name, address=address)
    return machines


def build_services(
    settings: Settings, networks: Mapping[str, Network], machines: Mapping[str, Machine]
) -> tuple[Service, ...]:
    services = []
    for name in sorted(settings.services):
        svc = settings.services[name]
        if svc.machine is not None:
            services.append(_remote_service(name, svc.machine, svc.port, machines))
            continue
        for index, net in enumerate(svc.networks):
            if net not in networks:
                raise SettingsError(f"services.{name}.networks[{index}]", f"{net!r} is not in 'networks'")
        host = svc.host or name
        services.append(Service(name=name, host=host, port=svc.port, networks=tuple(sorted(set(svc.networks)))))
    return tuple(services)


def _remote_service(name: str, machine_name: str, port: int, machines: Mapping[str, Machine]) -> Service:
    if machine_name not in machines:
        raise SettingsError(
            f"services.{name}.machine",
            f"{machine_name!r} is not a declared machine (see 'machines'), so the tailnet policy cannot name it "
            f"or grant the gateway its port{did_you_mean(machine_name, machines)}",
        )
    if port < LOWEST_REMOTE_PORT:
        raise SettingsError(
            f"services.{name}.port",
            f"the tailnet policy grants the gateway only ports {LOWEST_REMOTE_PORT}-65535 on another machine, "
            f"not {port}; serve the model on an unprivileged port (llama.cpp's default is 8080)",
        )
    machine = machines[machine_name]
    return Service(name=name, host=machine.address, port=port, networks=(), machine=machine)


def known(by_name: Mapping[str, Service], name: str, setting: str) -> Service:
    if name not in by_name:
        raise SettingsError(
            setting, f"{name!r} is not a declared service (see 'services'){did_you_mean(name, by_name)}"
        )
    return by_name[name]


def build_model(
    name: str, settings: Settings, by_name: Mapping[str, Service], gateway: Service, forwards: Mapping[str, str]
) -> Model:
    """A model and its backends; `forwards` maps each remote service to the URL LiteLLM reaches it by."""
    spec = settings.models[name]
    if not spec.api_path.startswith("/"):
        raise SettingsError(f"models.{name}.apiPath", f"{spec.api_path!r} must start with '/'")
    backends: list[Backend] = []
    for index, ref in enumerate(spec.backend_refs):
        where = f"models.{name}.backend" if spec.backends is None else f"models.{name}.backends[{index}].service"
        service = known(by_name, ref.service, where)
        if service.machine is None and not set(service.networks) & set(gateway.networks):
            raise SettingsError(
                where, f"{service.name!r} shares no network with {gateway.name!r}; LiteLLM could not reach it"
            )
        if any(b.service.name == service.name for b in backends):
            raise SettingsError(where, f"{service.name!r} is listed twice for {name}")
        via = forwards[service.name] if service.machine is not None else None
        backends.append(Backend(service=service, api_path=spec.api_path.rstrip("/"), weight=ref.weight, via=via))
    return Model(
        name=name,
        backends=tuple(backends),
        model_id=spec.model,
        timeout=spec.timeout,
        stream_timeout=spec.stream_timeout,
    )
