"""Topology -> the gateway's part of the Tailscale policy file. Pure and deterministic.

The edge binds only the tailnet, so this decides who reaches it: the configured audiences may connect
to the gateway's tag on the HTTPS port and nothing else, and the policy's own `tests` say so, so
Tailscale refuses to apply a merged policy that breaks it. The gateway itself may reach other machines
that serve models on their model ports only, and the tests say that too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..topology import TailnetAccess


@dataclass(frozen=True)
class GatewayPolicy:
    """The entries this project owns in each section of the policy file."""

    tag_owners: dict[str, list[str]]
    hosts: dict[str, str]
    grants: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    # The setting each `hosts` entry comes from, where it is not the gateway host's `tailnetIp`.
    host_settings: dict[str, str] = field(default_factory=dict)


def gateway_policy(access: TailnetAccess) -> GatewayPolicy:
    target = access.target
    closed = [f"{target}:{port}" for port in access.closed_ports]
    tests: list[dict[str, Any]] = [
        {"src": member, "accept": [f"{target}:{access.port}"], "deny": closed} for member in access.members
    ]
    tests += [{"src": outsider, "deny": [f"{target}:{access.port}"]} for outsider in access.outsiders]
    # Each tailnet route's audiences reach the gateway (Tailscale's tests check network access; the
    # capability itself the edge checks on every request). Groups and autogroups name no one to test as.
    testable = sorted(
        {a for _, audiences in access.capabilities for a in audiences if "@" in a or a.startswith("tag:")}
    )
    tests += [{"src": audience, "accept": [f"{target}:{access.port}"]} for audience in testable]
    # Other machines serving models: the gateway reaches their model ports and nothing else there.
    tests += [
        {
            "src": target,
            "accept": [f"{m.alias}:{port}" for port in m.ports],
            "deny": [f"{m.alias}:{port}" for port in m.closed_ports],
        }
        for m in access.machines
    ]
    hosts = dict([access.host_entry]) if access.host_entry else {}
    hosts.update({m.alias: m.address for m in access.machines})
    return GatewayPolicy(
        # The tag is owned (so keys and devices may carry it) only when a device carries it.
        tag_owners={} if access.host_entry else {access.tag: list(access.owners)},
        hosts=hosts,
        # Only the edge's port: LiteLLM's host port and SSH stay unreachable from the tailnet. Tailnet
        # routes: their audiences reach the port and get the route's capability, which serve hands to the edge.
        grants=[{"src": list(access.audiences), "dst": [target], "ip": [f"tcp:{access.port}"]}]
        + [
            {"src": list(audiences), "dst": [target], "ip": [f"tcp:{access.port}"], "app": {capability: [{}]}}
            for capability, audiences in access.capabilities
        ]
        + [{"src": [target], "dst": [m.alias], "ip": [f"tcp:{port}" for port in m.ports]} for m in access.machines],
        tests=tests,
        host_settings={m.alias: f"machines.{m.alias}.address" for m in access.machines},
    )
