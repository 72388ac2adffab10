"""The set of files the render CLI writes, from one topology."""

from __future__ import annotations

from ..topology import Topology
from .caddyfile import render_caddyfile
from .litellm_config import render_litellm_config


def render_all(topology: Topology, stack: str, tailnet_policy: str) -> dict[str, str]:
    """File name -> content, for every artifact a stack needs (the policy comes merged)."""
    return {
        "Caddyfile": render_caddyfile(topology, stack),
        "litellm.yaml": render_litellm_config(topology, stack),
        "tailnet-policy.hujson": tailnet_policy,
    }
