"""Who on the tailnet may reach the edge, as the tailnet policy grants and tests it."""

from __future__ import annotations

from dataclasses import dataclass

from policy.gateway_contract import TAILNET_NODE

from ..errors import SettingsError
from ..settings import Settings
from .remote import NODE_SOCKS5_PORT
from .routes import Route
from .services import Machine, Service

# Ports of the gateway host besides its API port that the policy tests check stay closed (ssh, http).
CLOSED_PORTS = (22, 80)


@dataclass(frozen=True)
class RemoteMachine:
    """Another tailnet machine the gateway's device may reach: its `hosts` alias, address and ports."""

    alias: str
    address: str
    ports: tuple[int, ...]

    @property
    def closed_ports(self) -> tuple[int, ...]:
        """Ports the policy tests check stay closed to the gateway there (ssh, http)."""
        return tuple(p for p in CLOSED_PORTS if p not in self.ports)


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
    # Other machines the gateway reaches (alias, tailnet address, the ports of its services there): the
    # policy names each by a `hosts` entry and grants the gateway exactly those ports.
    machines: tuple[RemoteMachine, ...] = ()

    @property
    def target(self) -> str:
        """What grants and tests name as the gateway: the tag, or the host's alias."""
        return self.host_entry[0] if self.host_entry else self.tag


def _host_entry(settings: Settings) -> tuple[str, str] | None:
    policy = settings.tailnet_policy
    if settings.exposure == TAILNET_NODE or policy.tag_device or settings.tailnet_ip is None:
        return None
    return f"{policy.tag.removeprefix('tag:')}-host", settings.tailnet_ip


def _remote_machines(host_entry: tuple[str, str] | None, services: tuple[Service, ...]) -> tuple[RemoteMachine, ...]:
    ports: dict[Machine, set[int]] = {}
    for service in services:
        if service.machine is not None:
            ports.setdefault(service.machine, set()).add(service.port)
    for machine in ports:
        if host_entry is not None and machine.name == host_entry[0]:
            raise SettingsError(
                f"machines.{machine.name}", "is the name the policy gives the gateway host itself; pick another"
            )
    return tuple(
        RemoteMachine(m.name, m.address, tuple(sorted(p))) for m, p in sorted(ports.items(), key=lambda i: i[0].name)
    )


def _node_ports(settings: Settings) -> tuple[int, ...]:
    """The gateway's own node listens on nothing else the tailnet may reach: its SOCKS5 proxy's port stays closed."""
    return (NODE_SOCKS5_PORT,) if settings.exposure == TAILNET_NODE else ()


def build_tailnet(settings: Settings, routes: tuple[Route, ...], services: tuple[Service, ...] = ()) -> TailnetAccess:
    policy = settings.tailnet_policy
    host_entry = _host_entry(settings)
    return TailnetAccess(
        tag=policy.tag,
        host_entry=host_entry,
        owners=policy.owners,
        audiences=policy.audiences,
        port=settings.edge.https_port,
        closed_ports=tuple(
            sorted({*CLOSED_PORTS, *_node_ports(settings), settings.gateway.bind.port} - {settings.edge.https_port})
        ),
        members=policy.tests.members,
        outsiders=policy.tests.outsiders,
        base_path=policy.base,
        manage=policy.manage,
        overwrite_existing=policy.overwrite_existing,
        tagged_device=settings.tailnet_host if policy.tag_device else None,
        capabilities=tuple(grant for r in routes if (grant := r.access.grant()) is not None),
        machines=_remote_machines(host_entry, services),
    )
