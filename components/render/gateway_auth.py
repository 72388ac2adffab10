"""Topology -> the LiteLLM custom auth module (`gateway_auth.py`). Pure and deterministic.

The module's code is `templates/gateway_auth.py` as it stands; rendering only writes the clients and
their models into it. It holds no secret: it reads the master key from the environment.
"""

from __future__ import annotations

from pathlib import Path

from ..topology import MASTER_CLIENT, Topology

GATEWAY_AUTH_FILE = "gateway_auth.py"
# LiteLLM's `custom_auth` setting: module (a file next to the config) and function.
CUSTOM_AUTH = "gateway_auth.user_api_key_auth"
_TEMPLATE = Path(__file__).parent / "templates" / "gateway_auth.py"
_PLACEHOLDER = "CLIENTS: dict[str, list[str] | None] = {}\n"


def render_gateway_auth(topology: Topology, stack: str) -> str:
    clients = topology.clients or (MASTER_CLIENT,)
    table = {c.name: (list(c.models) if c.models is not None else None) for c in clients}
    template = _TEMPLATE.read_text(encoding="utf-8")
    assert template.count(_PLACEHOLDER) == 1, "the template's client table moved"
    # repr writes a Python literal that means exactly this table, whatever the names hold.
    filled = template.replace(_PLACEHOLDER, f"CLIENTS: dict[str, list[str] | None] = {table!r}\n")
    header = (
        f"# Rendered by tailnet-llm-gateway from Pulumi.{stack}.yaml. Do not edit: change the stack\n"
        "# settings and render again (python -m components render).\n"
    )
    return header + filled
