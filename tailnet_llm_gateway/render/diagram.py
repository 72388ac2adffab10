"""The topology as a Mermaid flowchart (GitHub draws Mermaid in Markdown): the networks, the containers the
stack runs and the services it routes to, every host port with its address, every route with its auth
mode and who may use it, other machines with the ports the policy grants, and who on the tailnet gets in.

Containers, services and machines are boxes; a network is a hexagon joined by a dotted line to each box on
it; a host port is a rounded box pointing at its container; a solid arrow is traffic someone may send.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..topology import EDGE_CONTAINER, EDGE_NODE_PORT, NODE_CONTAINER, Route, Service, Topology
from ..topology.published import published_ports
from ..topology.remote import NODE_SOCKS5_PORT

TAILNET = "tailnet"
# The gateway's replicas, as one subgraph routes and backends point at.
GATEWAY = "gateway"


def node_id(kind: str, name: str) -> str:
    """A Mermaid id: the kind, then the name with anything but letters and digits as `_`."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9]', '_', name)}"


def _label(*lines: str) -> str:
    # Names and paths are checked against their grammars; a quote would still end the label, so escape it.
    return "<br/>".join(line.replace('"', "#quot;") for line in lines)


@dataclass
class _Chart:
    lines: list[str] = field(default_factory=list)

    def box(self, ident: str, *label: str, shape: str = "[]", indent: int = 1) -> None:
        opening, closing = shape[: len(shape) // 2], shape[len(shape) // 2 :]
        self.lines.append(f'{"  " * indent}{ident}{opening}"{_label(*label)}"{closing}')

    def link(self, source: str, target: str, label: str = "", arrow: str = "-->") -> None:
        text = f'|"{_label(label)}"|' if label else ""
        self.lines.append(f"  {source} {arrow}{text} {target}")


def _who(route: Route) -> str:
    """Who may use a route: its clients (API keys), the audiences its capability is granted to, or anyone
    the mode lets through (SSO's logins, or no one checked)."""
    grant = route.access.grant()
    if grant is not None:
        return ", ".join(grant[1])
    return ", ".join(c.name for c in route.access.clients())


def _route_label(route: Route) -> str:
    who = _who(route)
    return f"{route.path} · {route.auth}" + (f" · {who}" if who else "")


def _containers(topology: Topology) -> list[tuple[str, str, tuple[str, ...]]]:
    """(container, what it runs, its networks) for each container the stack runs; LiteLLM's replicas last."""
    edge = topology.edge
    found = [(EDGE_CONTAINER, "Caddy, the edge", (edge.network, *filter(None, [edge.egress_network])))]
    node = topology.node
    if node is not None:
        networks = (node.network, *filter(None, [node.egress_network]))
        found.append((NODE_CONTAINER, f"Tailscale node {node.hostname}", networks))
    gateway = topology.gateway
    return found + [(name, "LiteLLM", gateway.service.networks) for name in gateway.replica_names]


def _backends(topology: Topology) -> dict[Service, list[str]]:
    """Each service LiteLLM sends requests to, with the models it serves."""
    found: dict[Service, list[str]] = {}
    for model in topology.models:
        for backend in model.backends:
            found.setdefault(backend.service, []).append(model.name)
    return found


def _audiences(topology: Topology) -> Iterable[str]:
    return dict.fromkeys([*topology.tailnet.audiences, *(a for _, auds in topology.tailnet.capabilities for a in auds)])


def render_diagram(topology: Topology, stack: str) -> str:
    """The Markdown (a `mermaid` code block) of the stack's diagram."""
    chart = _Chart([f"%% stack {stack}: python -m tailnet_llm_gateway diagram --stack {stack}", "flowchart LR"])
    audiences = list(_audiences(topology))
    chart.box(TAILNET, "tailnet", *audiences, shape="(())")
    gateway = topology.gateway
    local = [s for s in topology.services if s.machine is None and s != gateway.service]
    containers = _containers(topology)
    chart.lines.append('  subgraph host["this host"]')
    for network in topology.networks:
        kind = "existing network" if network.existing else "network"
        subnet = [network.subnet] if network.subnet else []
        chart.box(node_id("net", network.name), f"{kind} {network.name}", *subnet, shape="{{}}", indent=2)
    for name, runs, _ in containers:
        if runs != "LiteLLM":
            chart.box(node_id("c", name), name, runs, indent=2)
    chart.lines.append(f'    subgraph {GATEWAY}["gateway service {gateway.service.name}"]')
    for name, runs, _ in containers:
        if runs == "LiteLLM":
            chart.box(node_id("c", name), name, runs, indent=3)
    chart.lines.append("    end")
    for service in local:
        chart.box(node_id("s", service.name), f"{service.name}:{service.port}", "not run by this stack", indent=2)
    for published in published_ports(topology):
        chart.box(node_id("p", str(published.bind)), f"host port {published.bind}", shape="([])", indent=2)
    chart.lines.append("  end")
    for machine in topology.tailnet.machines:
        ports = ", ".join(str(p) for p in machine.ports)
        chart.box(node_id("m", machine.alias), f"{machine.alias} {machine.address}", f"granted ports {ports}")

    # Who is on which network: one line a network, its members joined by `&`.
    members: dict[str, list[str]] = {}
    for name, _, joined in containers:
        for network_name in joined:
            members.setdefault(network_name, []).append(node_id("c", name))
    for service in local:
        for network_name in service.networks:
            members.setdefault(network_name, []).append(node_id("s", service.name))
    for network in topology.networks:
        if network.name in members:
            chart.link(" & ".join(members[network.name]), node_id("net", network.name), arrow="-.-")

    # Host ports, and who on the tailnet gets in.
    edge = node_id("c", EDGE_CONTAINER)
    for published in published_ports(topology):
        chart.link(node_id("p", str(published.bind)), node_id("c", published.container), f":{published.container_port}")
    who = ", ".join(audiences)
    if topology.node is None:
        chart.link(TAILNET, node_id("p", f"{topology.site.tailnet_ip}:{topology.edge.https_port}"), f"https · {who}")
    else:
        node = node_id("c", NODE_CONTAINER)
        chart.link(TAILNET, node, f"https {topology.site.tailnet_host} · {who}")
        chart.link(node, edge, f"http :{EDGE_NODE_PORT}")

    # Routes, as the edge serves them.
    for route in topology.routes:
        if route.upstream is None:
            chart.link(edge, edge, f"{_route_label(route)} · answers itself")
        else:
            chart.link(edge, GATEWAY if route.to_gateway else node_id("s", route.upstream.name), _route_label(route))

    # LiteLLM's backends with the models each serves; one on another machine through the edge's forwarder.
    for service, models in _backends(topology).items():
        names = ", ".join(models)
        if service.machine is None:
            chart.link(GATEWAY, node_id("s", service.name), names)
            continue
        forward = next(f for f in topology.forwards if f.service == service)
        chart.link(GATEWAY, edge, f"{names} · forwarder :{forward.port}")
        dialer = edge
        if topology.node is not None and topology.egress is not None:
            dialer = node_id("c", NODE_CONTAINER)
            chart.link(edge, dialer, f"SOCKS5 :{NODE_SOCKS5_PORT}")
        chart.link(dialer, node_id("m", service.machine.name), f"{service.machine.address}:{service.port}")
    return "```mermaid\n" + "\n".join(chart.lines) + "\n```\n"
