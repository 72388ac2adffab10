"""Topology -> the gateway's part of the Tailscale policy file (HuJSON). Pure and deterministic.

The edge binds only the tailnet, so this is what decides who reaches it: the configured audiences may
connect to the gateway's tag on the HTTPS port, and on nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from ..topology import Topology


def tailnet_policy(topology: Topology) -> dict[str, Any]:
    access = topology.tailnet
    return {
        "tagOwners": {access.tag: list(access.owners)},
        "grants": [
            {
                "src": list(access.audiences),
                "dst": [access.tag],
                # Only the edge's port: LiteLLM's 11435 and SSH stay unreachable from the tailnet.
                "ip": [f"tcp:{access.port}"],
            }
        ],
    }


def render_tailnet_policy(topology: Topology, stack: str) -> str:
    header = (
        f"// Rendered by tailnet-llm-gateway from Pulumi.{stack}.yaml: the gateway's part of the\n"
        "// tailnet policy. Do not edit: change the stack settings and render again.\n"
    )
    return header + json.dumps(tailnet_policy(topology), indent=2) + "\n"
