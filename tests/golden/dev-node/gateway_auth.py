# Rendered by tailnet-llm-gateway from Pulumi.dev-node.yaml. Do not edit: change the stack
# settings and render again (python -m components render).
"""LiteLLM custom auth for tailnet-llm-gateway (rendered next to the LiteLLM config; do not edit).

Only the edge and host apps talk to LiteLLM, and both hold the master key; the edge says which client
is calling in a header it sets itself (a client's own copy never gets past the edge). So:
- the master key is compared as bytes, in constant time; anything else is refused (401);
- no client header: a host app on the loopback port, the gateway's admin, as without this module;
- a client header: that client, limited to its models (LiteLLM enforces them: 403 for any other);
- `tailnet:<login>`: a caller the gateway's Tailscale node vouched for, with every model.
No database is needed: the clients and their models are written into this file.
"""

from __future__ import annotations

import hmac
import os

from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
CLIENT_HEADER = "x-gateway-client"
TAILNET_PREFIX = "tailnet:"
# Client name -> the models it may use (None: every model). Rendered from the stack settings.
CLIENTS: dict[str, list[str] | None] = {'master': None}


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    master = os.environ.get(MASTER_KEY_ENV, "")
    if not master or not hmac.compare_digest((api_key or "").encode(), master.encode()):
        raise Exception("invalid API key")
    client = request.headers.get(CLIENT_HEADER)
    if client is None:
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.PROXY_ADMIN)
    if client.startswith(TAILNET_PREFIX) and len(client) > len(TAILNET_PREFIX):
        return UserAPIKeyAuth(api_key=api_key, user_id=client)
    if client not in CLIENTS:
        raise Exception("unknown client")
    return UserAPIKeyAuth(api_key=api_key, user_id=client, models=list(CLIENTS[client] or []))
