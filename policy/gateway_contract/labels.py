"""The labels the program puts on containers and the pack reads, and the roles a container can have."""

from __future__ import annotations

from .exposure import TAILNET_NODE

# What a container is for: one of the Role values.
ROLE_LABEL = "tailnet-llm-gateway.role"
# A container that must run as root says why in this label (an explicit, reviewable exception).
ROOT_EXCEPTION_LABEL = "tailnet-llm-gateway.runs-as-root-because"
# A config writer names the role of the service it writes for; a service carries its file's sha256.
CONFIG_FOR_LABEL = "tailnet-llm-gateway.config-for"
CONFIG_HASH_LABEL = "tailnet-llm-gateway.config-sha256"


class Role:
    """Every role a container of the stack has (the value of ROLE_LABEL)."""

    # LiteLLM: published on 127.0.0.1 only.
    GATEWAY = "model-gateway"
    # Caddy: published on the tailnet address only (host-bind), or not at all behind the node.
    EDGE = "edge"
    # The gateway's own Tailscale node, which exists only in that exposure mode.
    NODE = TAILNET_NODE
    # Never started: it holds a service's rendered files in a volume the service mounts read-only.
    CONFIG_WRITER = "config-writer"
    # Never started: it holds the edge's key files (its uploads are the secrets themselves).
    KEYS_WRITER = "keys-writer"
