# Rendered by tailnet-llm-gateway from Pulumi.dev.yaml. Do not edit: change the stack
# settings and render again (python -m tailnet_llm_gateway render).
"""LiteLLM custom auth for tailnet-llm-gateway (rendered next to the LiteLLM config; do not edit).

Two keys open LiteLLM, and they mean different things:
- the master key: a host app on the loopback port, LiteLLM's admin, as without this module;
- the edge's own key: a request the edge forwarded. The edge says which client is calling in a header it
  sets after every header a client could send is gone. Without exactly one such name, or with a name
  this file does not list, the request is refused: it is never promoted to the admin. A client reaches
  only the endpoints an API client needs, and only its own models (LiteLLM answers 403 for others);
  `tailnet:<login>` is a caller the gateway's Tailscale node vouched for (every model); the readiness
  identity may only ask a backend's readiness check.
Anything else is refused (401), and so is a request whose key headers disagree (LiteLLM would take
x-litellm-api-key over Authorization: a second key must not choose who the caller is), or a forwarded
request for a model this gateway does not serve (its name would otherwise become a metric label: LiteLLM
counts no refused key). Keys are compared as bytes, in constant time. No database is needed: the
endpoints are written into this file, the clients and their models into `clients.json` beside it, and
each caller's limits into `limits.json`; both are read again whenever they change, so adding or revoking
a client, or changing a limit, needs no restart. While a file is being rewritten (it is absent or partial
for a moment), the table read last stays in use; with none read yet, no client is known and no limit set.

LiteLLM refuses some requests before any auth runs (a body that sets `api_base`, for one), and counts
those under the model the body names. So that no client can add metric series at will, this module, once
imported, has LiteLLM's Prometheus logger write a model label whose value this gateway does not serve as
"" (no model), as for a request that names none.

Each caller is its own identity toward LiteLLM (its name as `api_key`, `user_id` and `key_alias`; never a
key): LiteLLM's limiter counts requests, tokens and streams in flight per identity, in this process's
memory, and its metrics are labelled with it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
from typing import Any

from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth

MASTER_KEY_ENV = 'LITELLM_MASTER_KEY'
EDGE_KEY_ENV = 'TLG_EDGE_KEY'
CLIENT_HEADER = 'x-gateway-client'
READINESS_CLIENT = 'edge:readiness'
READINESS_PATH = '/tailnet-llm-gateway/ready'
TAILNET_PREFIX = 'tailnet:'
# Every header LiteLLM takes a key from.
KEY_HEADERS: tuple[str, ...] = ('X-Litellm-Api-Key', 'Authorization', 'Api-Key', 'X-Api-Key', 'X-Goog-Api-Key', 'Ocp-Apim-Subscription-Key', 'Litellm_User_Api_Key')
# The model names this gateway serves (its LiteLLM config's model_name values).
MODELS: tuple[str, ...] = ('local-chat', 'local-embed')
# Client name -> the models it may use (None: every model), as rendered from the stack settings.
CLIENTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients.json")
# {"clients": {name: limits}, "tailnet": limits}, limits as LiteLLM names them (rpm_limit, tpm_limit,
# max_parallel_requests).
LIMITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "limits.json")
_read: dict[str, dict[str, object]] = {path: {"stamp": None, "table": {}} for path in (CLIENTS_FILE, LIMITS_FILE)}
# Whoever holds the master key (a host app on the loopback port), in LiteLLM's counts and metrics.
ADMIN_CALLER = "host:admin"
_LIMIT_NAMES = ("rpm_limit", "tpm_limit", "max_parallel_requests")
# LiteLLM's metric labels that hold the model a request named.
_MODEL_LABELS = ("requested_model", "model_group", "model")
# The endpoints a client may call: exact paths, or prefixes ending in /*.
API_PATHS: tuple[str, ...] = ('/v1/models', '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/messages', '/v1/messages/count_tokens')
# A Tailscale login as serve reports it (user@domain, user@github, ...).
_LOGIN = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}")
# A tagged device has no user: it is named by its tailnet address (`device:100.101.102.103`), as serve
# reports it. Addresses in these ranges only.
TAILNET_RANGES: tuple[str, ...] = ('100.64.0.0/10', 'fd7a:115c:a1e0::/48')


def _refused(why: str) -> ProxyException:
    """A refusal: 401, which LiteLLM never counts in its metrics (no label of a refused request is kept)."""
    return ProxyException(message=f"Authentication Error: {why}", type="auth_error", param=None, code=401)


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


def _tailnet_caller(name: str) -> bool:
    """A tailnet login, or a tagged device by its tailnet address (in its canonical form)."""
    if _LOGIN.fullmatch(name):
        return True
    kind, _, address = name.partition(":")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return kind == "device" and str(ip) == address and any(ip in ipaddress.ip_network(n) for n in TAILNET_RANGES)


def _api_path(path: str) -> bool:
    if any(segment in (".", "..") for segment in path.split("/")):
        return False
    return any(path == p or (p.endswith("/*") and path.startswith(p[:-1])) for p in API_PATHS)


def _one_key(request: Request, api_key: str) -> str:
    """The key the request presents, the same in every header LiteLLM takes one from (and any `key` query
    parameter); a request whose headers name two keys is refused."""
    from litellm.proxy.auth.user_api_key_auth import _get_bearer_token_or_received_api_key

    values = [value for name in KEY_HEADERS for value in request.headers.getlist(name)]
    values += [api_key, *request.query_params.getlist("key")]
    presented = {_get_bearer_token_or_received_api_key(value) for value in values} - {""}
    if len(presented) > 1:
        raise _refused("the request presents more than one key")
    return api_key or ""


async def _served_model(request: Request) -> None:
    """A forwarded request's body is a JSON object that names a model this gateway serves, or none: any other
    name is refused here, before LiteLLM would count it under that name. (Starlette keeps the body it read for
    LiteLLM, so reading it again costs nothing.)"""
    raw = await request.body()
    if not raw.strip():
        return
    try:
        body = json.loads(raw)
    except ValueError:
        return  # LiteLLM answers a body that is not JSON with 400, under no model's name
    if not isinstance(body, dict):
        raise ProxyException(
            message="The request body is not a JSON object.", type="invalid_request_error", param=None, code=400
        )
    if "model" in body and not (isinstance(body["model"], str) and body["model"] in MODELS):
        raise _refused("no such model on this gateway; GET /v1/models lists them")


def _count_unknown_models_under_none() -> None:
    """Every label LiteLLM's Prometheus logger writes is made by one function of its module; a model label
    whose value this gateway does not serve is written as "" (as for a request that names no model)."""
    import litellm.integrations.prometheus as prometheus

    make = prometheus.prometheus_label_factory

    def labels(*args: Any, **kwargs: Any) -> dict[str, Any]:
        made: dict[str, Any] = make(*args, **kwargs)
        for name in _MODEL_LABELS:
            if name in made and made[name] not in (None, "", "None", *MODELS):
                made[name] = ""
        return made

    prometheus.prometheus_label_factory = labels


_count_unknown_models_under_none()


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    presented = _one_key(request, api_key)
    if _same(presented, os.environ.get(MASTER_KEY_ENV, "")):
        return _caller(ADMIN_CALLER, None, user_role=LitellmUserRoles.PROXY_ADMIN)
    if not _same(presented, os.environ.get(EDGE_KEY_ENV, "")):
        raise _refused("invalid API key")
    names = request.headers.getlist(CLIENT_HEADER)
    if len(names) != 1:
        raise _refused("the edge did not say who is calling")
    client, path = names[0], request.url.path
    if client == READINESS_CLIENT:
        if request.method == "GET" and re.fullmatch(re.escape(READINESS_PATH) + r"/[0-9]+", path):
            return _caller(client, None, models=[])
        raise _refused("the readiness check asks only a backend's readiness")
    if not _api_path(path):
        raise _refused("not an endpoint API clients may use")
    await _served_model(request)
    limits = _table(LIMITS_FILE)
    caller = client[len(TAILNET_PREFIX) :] if client.startswith(TAILNET_PREFIX) else None
    if caller is not None and _tailnet_caller(caller):
        return _caller(client, limits.get("tailnet"))
    clients = _table(CLIENTS_FILE)
    if client not in clients:
        raise _refused("unknown client")
    named = limits.get("clients")
    own = named.get(client) if isinstance(named, dict) else None
    return _caller(client, own, models=list(clients[client] or []))
