"""Topology -> the LiteLLM custom auth module (`gateway_auth.py`). Pure and deterministic.

The module's code is `templates/gateway_auth.py` as it stands; rendering only fills in its constants:
the environment variables of the two keys, the edge's client header, the clients and their models, the
endpoints clients may call. Each is written as a Python literal (`repr`), which means exactly that value
whatever it holds. The module holds no secret: it reads both keys from the environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from policy.gateway_contract import EDGE_KEY_ENV, GATEWAY_API_PATHS, READINESS_CLIENT

from ..topology import BACKEND_CHECK_PATH, CLIENT_HEADER, MASTER_CLIENT, MASTER_KEY_ENV, TAILNET_CLIENT_PREFIX, Topology

GATEWAY_AUTH_FILE = "gateway_auth.py"
# LiteLLM's `custom_auth` setting: module (a file next to the config) and function.
CUSTOM_AUTH = "gateway_auth.user_api_key_auth"
_TEMPLATE = Path(__file__).parent / "templates" / "gateway_auth.py"


def gateway_auth_constants(topology: Topology) -> dict[str, Any]:
    """What the module is told: which keys, which header, which clients, which endpoints."""
    clients = topology.clients or (MASTER_CLIENT,)
    return {
        "MASTER_KEY_ENV": MASTER_KEY_ENV,
        "EDGE_KEY_ENV": EDGE_KEY_ENV,
        # Starlette compares header names in lower case.
        "CLIENT_HEADER": CLIENT_HEADER.lower(),
        "READINESS_CLIENT": READINESS_CLIENT,
        "READINESS_PATH": BACKEND_CHECK_PATH,
        "TAILNET_PREFIX": TAILNET_CLIENT_PREFIX,
        "CLIENTS": {c.name: (list(c.models) if c.models is not None else None) for c in clients},
        "API_PATHS": GATEWAY_API_PATHS,
    }


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
        "# settings and render again (python -m components render).\n"
    )
    return header + text
