"""Topology -> the gateway's part of the Tailscale policy file. Pure and deterministic.

The edge binds only the tailnet, so this decides who reaches it: the configured audiences may connect
to the gateway's tag on the HTTPS port and nothing else, and the policy's own `tests` say so, so
Tailscale refuses to apply a merged policy that breaks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..topology import TailnetAccess


@dataclass(frozen=True)
class GatewayPolicy:
    """The entries this project owns in each section of the policy file."""

    tag_owners: dict[str, list[str]]
    hosts: dict[str, str]
    grants: list[dict[str, Any]]
    tests: list[dict[str, Any]]


def gateway_policy(access: TailnetAccess) -> GatewayPolicy:
    target = access.target
    closed = [f"{target}:{port}" for port in access.closed_ports]
    tests: list[dict[str, Any]] = [
        {"src": member, "accept": [f"{target}:{access.port}"], "deny": closed} for member in access.members
    ]
    tests += [{"src": outsider, "deny": [f"{target}:{access.port}"]} for outsider in access.outsiders]
    return GatewayPolicy(
        # The tag is owned (so keys and devices may carry it) only when a device carries it.
        tag_owners={} if access.host_entry else {access.tag: list(access.owners)},
        hosts=dict([access.host_entry]) if access.host_entry else {},
        # Only the edge's port: LiteLLM's host port and SSH stay unreachable from the tailnet. Tailnet
        # routes: their audiences reach the port and get the route's capability, which serve hands to the edge.
        grants=[{"src": list(access.audiences), "dst": [target], "ip": [f"tcp:{access.port}"]}]
        + [
            {"src": list(audiences), "dst": [target], "ip": [f"tcp:{access.port}"], "app": {capability: [{}]}}
            for capability, audiences in access.capabilities
        ],
        tests=tests,
    )
