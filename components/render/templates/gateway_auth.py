"""LiteLLM custom auth for tailnet-llm-gateway (rendered next to the LiteLLM config; do not edit).

Two keys open LiteLLM, and they mean different things:
- the master key: a host app on the loopback port, LiteLLM's admin, as without this module;
- the edge's own key: a request the edge forwarded. The edge says which client is calling in a header it
  sets after every header a client could send is gone. Without exactly one such name, or with a name
  this file does not list, the request is refused: it is never promoted to the admin. A client reaches
  only the endpoints an API client needs, and only its own models (LiteLLM answers 403 for others);
  `tailnet:<login>` is a caller the gateway's Tailscale node vouched for (every model); the readiness
  identity may only ask a backend's readiness check.
Anything else is refused (401). Keys are compared as bytes, in constant time. No database is needed: the
endpoints are written into this file, the clients and their models into `clients.json` beside it, and
each caller's limits into `limits.json`; both are read again whenever they change, so adding or revoking
a client, or changing a limit, needs no restart. While a file is being rewritten (it is absent or partial
for a moment), the table read last stays in use; with none read yet, no client is known and no limit set.

Each caller is its own identity toward LiteLLM (its name as `api_key`, `user_id` and `key_alias`; never a
key): LiteLLM's limiter counts requests, tokens and streams in flight per identity, in this process's
memory, and its metrics are labelled with it.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from typing import Any

from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

MASTER_KEY_ENV = ""
EDGE_KEY_ENV = ""
CLIENT_HEADER = ""
READINESS_CLIENT = ""
READINESS_PATH = ""
TAILNET_PREFIX = ""
# Client name -> the models it may use (None: every model), as rendered from the stack settings.
CLIENTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients.json")
# {"clients": {name: limits}, "tailnet": limits}, limits as LiteLLM names them (rpm_limit, tpm_limit,
# max_parallel_requests).
LIMITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "limits.json")
_read: dict[str, dict[str, object]] = {path: {"stamp": None, "table": {}} for path in (CLIENTS_FILE, LIMITS_FILE)}
# Whoever holds the master key (a host app on the loopback port), in LiteLLM's counts and metrics.
ADMIN_CALLER = "host:admin"
_LIMIT_NAMES = ("rpm_limit", "tpm_limit", "max_parallel_requests")
# The endpoints a client may call: exact paths, or prefixes ending in /*.
API_PATHS: tuple[str, ...] = ()
# A Tailscale login as serve reports it (user@domain, user@github, ...).
_LOGIN = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}|tagged-device")


def _same(presented: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


def _table(path: str) -> dict[str, Any]:
    read = _read[path]
    try:
        stat = os.stat(path)
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != read["stamp"]:
            with open(path, encoding="utf-8") as file:
                table = json.load(file)
            if isinstance(table, dict):
                read.update(stamp=stamp, table=table)
    except (OSError, ValueError):
        pass  # being rewritten: keep the table read last
    table = read["table"]
    return table if isinstance(table, dict) else {}


def _limits(limits: object) -> dict[str, int]:
    if not isinstance(limits, dict):
        return {}
    return {name: value for name, value in limits.items() if name in _LIMIT_NAMES and type(value) is int}


def _caller(client: str, limits: object, **extra: object) -> UserAPIKeyAuth:
    """The identity LiteLLM counts and labels: the caller's name (never a key), with its limits."""
    return UserAPIKeyAuth.model_validate(
        {"api_key": client, "user_id": client, "key_alias": client, **_limits(limits), **extra}
    )


def _api_path(path: str) -> bool:
    if any(segment in (".", "..") for segment in path.split("/")):
        return False
    return any(path == p or (p.endswith("/*") and path.startswith(p[:-1])) for p in API_PATHS)


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    presented = api_key or ""
    if _same(presented, os.environ.get(MASTER_KEY_ENV, "")):
        return _caller(ADMIN_CALLER, None, user_role=LitellmUserRoles.PROXY_ADMIN)
    if not _same(presented, os.environ.get(EDGE_KEY_ENV, "")):
        raise Exception("invalid API key")
    names = request.headers.getlist(CLIENT_HEADER)
    if len(names) != 1:
        raise Exception("the edge did not say who is calling")
    client, path = names[0], request.url.path
    if client == READINESS_CLIENT:
        if request.method == "GET" and re.fullmatch(re.escape(READINESS_PATH) + r"/[0-9]+", path):
            return _caller(client, None, models=[])
        raise Exception("the readiness check asks only a backend's readiness")
    if not _api_path(path):
        raise Exception("not an endpoint API clients may use")
    limits = _table(LIMITS_FILE)
    if client.startswith(TAILNET_PREFIX) and _LOGIN.fullmatch(client[len(TAILNET_PREFIX) :]):
        return _caller(client, limits.get("tailnet"))
    clients = _table(CLIENTS_FILE)
    if client not in clients:
        raise Exception("unknown client")
    named = limits.get("clients")
    own = named.get(client) if isinstance(named, dict) else None
    return _caller(client, own, models=list(clients[client] or []))
