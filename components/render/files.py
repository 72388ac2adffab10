"""The set of files the render CLI writes, from one topology."""

from __future__ import annotations

from ..topology import Topology
from .caddyfile import render_caddyfile
from .litellm_config import render_litellm_config
from .tailnet_policy import render_tailnet_policy


def render_all(topology: Topology, stack: str) -> dict[str, str]:
    """File name -> content, for every artifact a stack needs."""
    return {
        "Caddyfile": render_caddyfile(topology, stack),
        "litellm.yaml": render_litellm_config(topology, stack),
        "tailnet-policy.hujson": render_tailnet_policy(topology, stack),
    }
