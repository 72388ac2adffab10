"""tailnet-llm-gateway: a tailnet-only front door to a self-hosted LiteLLM gateway.

Public API: `TailnetLLMGateway` (a Pulumi ComponentResource, see gateway.py), `Settings` (the stack
file's keys, typed) and `SettingsError` (one bad setting, named). The modules, in the order data flows:

    settings/   typed stack settings, where they come from, how a mistake is told
    topology    the one model: services, networks, routes, the edge, the gateway, who may reach what
    plan        settings -> topology -> checked tailnet policy -> every rendered file
    tailnet/    the tailnet policy: the gateway's entries, the merge into the user's file, the offline check
    render/     pure renderers: topology -> Caddyfile, LiteLLM config, the node's serve config
    auth/       the auth modes, one module each
    docker/     Pulumi components for the Docker host (networks, images, containers)
    tailscale/  Pulumi components for the Tailscale API (the policy)
    stack       GatewayStack: wires one plan into those components
    gateway     TailnetLLMGateway: settings -> plan -> GatewayStack, the public component

Importing this package does not import Pulumi (the command line does not need it); `TailnetLLMGateway`
imports it when first named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import SettingsError
from .settings import Settings

if TYPE_CHECKING:
    from .gateway import TailnetLLMGateway

__all__ = ["Settings", "SettingsError", "TailnetLLMGateway"]


def __getattr__(name: str) -> Any:
    if name == "TailnetLLMGateway":
        from .gateway import TailnetLLMGateway

        return TailnetLLMGateway
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
