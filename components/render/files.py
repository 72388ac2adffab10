"""The set of files the render CLI writes, from one topology."""

from __future__ import annotations

from ..topology import Topology
from .caddyfile import render_caddyfile
from .litellm_config import render_litellm_config
from .tailscale_serve import render_serve_config


def render_all(topology: Topology, stack: str, tailnet_policy: str) -> dict[str, str]:
    """File name -> content, for every artifact a stack needs (the policy comes merged)."""
    files = {
        "Caddyfile": render_caddyfile(topology, stack),
        "litellm.yaml": render_litellm_config(topology, stack),
        "tailnet-policy.hujson": tailnet_policy,
    }
    if topology.site.exposure == "tailnet-node":
        files["tailscale-serve.json"] = render_serve_config(topology)
    return files
