"""Topology -> the LiteLLM custom auth module (`gateway_auth.py`) and its client table (`clients.json`).
Pure and deterministic.

The module's code is `templates/gateway_auth.py` as it stands; rendering only fills in its constants:
the environment variables of the two keys, the edge's client header, the endpoints clients may call.
Each is written as a Python literal (`repr`), which means exactly that value whatever it holds. The
clients and their models go to `clients.json` beside it, and each caller's limits to `limits.json`
(JSON), which the module reads again when they change: a client added or revoked, or a limit changed,
does not restart LiteLLM. No file holds a secret: the module reads both keys from the environment.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from policy.gateway_contract import (
    CLIENT_HEADER,
    EDGE_KEY_ENV,
    GATEWAY_API_PATHS,
    LITELLM_KEY_HEADERS,
    MASTER_KEY_ENV,
    READINESS_CLIENT,
    TAILSCALE_RANGES,
)

from ..auth import TAILNET_CLIENT_PREFIX
from ..topology import BACKEND_CHECK_PATH, MASTER_CLIENT, RateLimits, Topology

GATEWAY_AUTH_FILE = "gateway_auth.py"
GATEWAY_CLIENTS_FILE = "clients.json"
GATEWAY_LIMITS_FILE = "limits.json"
# LiteLLM's `custom_auth` setting: module (a file next to the config) and function.
CUSTOM_AUTH = "gateway_auth.user_api_key_auth"
_TEMPLATE = Path(__file__).parent / "templates" / "gateway_auth.py"


def gateway_auth_constants(topology: Topology) -> dict[str, Any]:
    """What the module is told: which keys, which header, which endpoints."""
    return {
        "MASTER_KEY_ENV": MASTER_KEY_ENV,
        "EDGE_KEY_ENV": EDGE_KEY_ENV,
        # Starlette compares header names in lower case.
        "CLIENT_HEADER": CLIENT_HEADER.lower(),
        "READINESS_CLIENT": READINESS_CLIENT,
        "READINESS_PATH": BACKEND_CHECK_PATH,
        "TAILNET_PREFIX": TAILNET_CLIENT_PREFIX,
        "API_PATHS": GATEWAY_API_PATHS,
        "KEY_HEADERS": LITELLM_KEY_HEADERS,
        "MODELS": tuple(sorted(m.name for m in topology.models)),
        "TAILNET_RANGES": tuple(str(network) for network in TAILSCALE_RANGES),
    }


def gateway_clients(topology: Topology) -> dict[str, list[str] | None]:
    """Each client the edge may name, with the models it may use (None: every model)."""
    clients = topology.clients or (MASTER_CLIENT,)
    return {c.name: (list(c.models) if c.models is not None else None) for c in clients}


def render_gateway_clients(topology: Topology) -> str:
    return json.dumps(gateway_clients(topology), indent=2, sort_keys=True) + "\n"


def _limit_names() -> tuple[str, ...]:
    """The names LiteLLM's limiter reads from the identity the module returns, as the module lists them
    (`_LIMIT_NAMES`, in RateLimits' field order): written once, in the template."""
    for node in ast.parse(_TEMPLATE.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_LIMIT_NAMES" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
            assert len(names) == len(fields(RateLimits)), "the template's _LIMIT_NAMES and RateLimits disagree"
            return tuple(names)
    raise AssertionError("the template's _LIMIT_NAMES line moved")


LITELLM_LIMIT_NAMES = _limit_names()


def _litellm_limits(limits: RateLimits) -> dict[str, int]:
    """A caller's limits under the names LiteLLM's limiter reads."""
    named = zip(LITELLM_LIMIT_NAMES, (getattr(limits, f.name) for f in fields(RateLimits)), strict=True)
    return {name: value for name, value in named if value is not None}


def gateway_limits(topology: Topology) -> dict[str, dict[str, Any]]:
    """Each client's limits (by name), and each tailnet login's; a caller without limits is left out."""
    clients = topology.clients or (MASTER_CLIENT,)
    limits = {c.name: _litellm_limits(topology.rate_limits_of(c)) for c in clients}
    return {
        "clients": {name: value for name, value in limits.items() if value},
        "tailnet": _litellm_limits(topology.tailnet_limits),
    }


def render_gateway_limits(topology: Topology) -> str:
    return json.dumps(gateway_limits(topology), indent=2, sort_keys=True) + "\n"


def render_gateway_auth(topology: Topology, stack: str) -> str:
    text = _TEMPLATE.read_text(encoding="utf-8")
    for name, value in gateway_auth_constants(topology).items():
        # The template's own line for the constant (`NAME = ...` or `NAME: type = ...`), exactly once.
        line = re.compile(rf"^({name}(?:: [^=\n]+)? = ).*$", re.M)
        # A replacement template reads backslashes; the literal's own are doubled to stay as they are.
        literal = repr(value).replace("\\", "\\\\")
        text, found = line.subn(r"\g<1>" + literal, text)
        assert found == 1, f"the template's {name} line moved"
    header = (
        f"# Rendered by tailnet-llm-gateway from Pulumi.{stack}.yaml. Do not edit: change the stack\n"
        "# settings and render again (python -m tailnet_llm_gateway render).\n"
    )
    return header + text
