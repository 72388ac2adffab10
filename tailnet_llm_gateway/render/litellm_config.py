"""Topology -> LiteLLM proxy config (YAML). Pure and deterministic.

The master key is referenced as `os.environ/LITELLM_MASTER_KEY`, never written. Header-trusting auth
(`enable_oauth2_proxy_auth`) is never enabled: the bypass route passes client headers through.

How faults are handled (measured with LiteLLM 1.98.1, the pinned release, and 1.106.2):
- a model served by one backend is never put in cooldown: LiteLLM would otherwise answer every client
  with 429 "No deployments available" for a while after a single 404 or a short outage, though there is
  nothing else to fail over to;
- a model served by several backends puts a failing one in cooldown at once and retries the request on
  another, so clients see no failure while one backend is down;
- one retry, so a dead backend costs a client about a second, not minutes.
"""

from __future__ import annotations

from typing import Any

import yaml

from policy.gateway_contract import EDGE_KEY_ENV, MASTER_KEY_ENV

from ..topology import BACKEND_CHECK_PATH, Model, Topology
from .gateway_auth import CUSTOM_AUTH

# A deployment-level allowed_fails on a model group of one deployment makes LiteLLM skip cooldown for it
# (router_utils/cooldown_handlers.py: the "single deployment" safety net); the number itself is unused.
_NEVER_COOL_DOWN = {"allowed_fails": 1000}
# The edge's key, as LiteLLM reads it from its environment (never written here).
_EDGE_KEY = f"os.environ/{EDGE_KEY_ENV}"
# How long LiteLLM waits for a backend's readiness answer (the edge waits 5 s for LiteLLM's).
BACKEND_CHECK_TIMEOUT_S = 4
# How long a failing backend of a several-backend model is left out.
COOLDOWN_S = 30


CLIENT_WRITTEN_LABELS = ("end_user", "user_agent")


def _metrics_settings(topology: Topology) -> dict[str, Any]:
    if not topology.metrics:
        return {}
    return {
        # Prometheus metrics on /metrics (requests, tokens, latency, errors; labelled with the caller the
        # custom auth names and the model); prometheus_client ships in LiteLLM's image.
        "callbacks": ["prometheus"],
        # Only the master key reads them (the edge never forwards /metrics; the port is on loopback).
        "require_auth_for_metrics_endpoint": True,
        # No label whose value a client writes: the body's `user` (end_user) and its User-Agent would each
        # add series without bound. The model a client asks for stays a label: the custom auth refuses a
        # name this gateway does not serve before LiteLLM counts it.
        "prometheus_exclude_labels": list(CLIENT_WRITTEN_LABELS),
    }


def litellm_config(topology: Topology) -> dict[str, Any]:
    return {
        "model_list": [entry for model in topology.models for entry in _model_entries(model, topology)],
        "litellm_settings": {
            **_metrics_settings(topology),
            "request_timeout": topology.request_timeout,
            # No callbacks home: the gateway talks only to the backends it is given.
            "telemetry": False,
            # Anthropic-style clients (/v1/messages): translate to chat completions, which llama.cpp and
            # other OpenAI-compatible servers speak, rather than to OpenAI's /v1/responses.
            "use_chat_completions_url_for_anthropic_messages": True,
            # With custom auth, LiteLLM checks a client's models only when told to (a 403 otherwise).
            "enable_post_custom_auth_checks": True,
        },
        "router_settings": {
            "allowed_fails": 0,
            "cooldown_time": COOLDOWN_S,
            "num_retries": 1,
            "retry_after": 0,
        },
        "general_settings": {
            # Read from the container environment (a Pulumi secret), so it is never in this file.
            "master_key": f"os.environ/{MASTER_KEY_ENV}",
            # Who is calling, from the header the edge sets, and which models that client may use: the
            # module rendered next to this file (gateway_auth.py). No database needed.
            "custom_auth": CUSTOM_AUTH,
            "custom_auth_run_common_checks": True,
            # LiteLLM's limiter counts a caller's tokens as the backend reported them, input and output.
            "token_rate_limit_type": "total",
            # The edge's readiness report asks each backend through LiteLLM (the edge cannot reach the
            # backends' networks); these paths need the master key, and the edge never forwards them.
            "pass_through_endpoints": [
                {
                    "path": f"{BACKEND_CHECK_PATH}/{index}",
                    # Every OpenAI-compatible server lists its models; it is cheap and needs no model loaded.
                    "target": f"{backend.api_base}/models",
                    "methods": ["GET"],
                    # Below the edge's own wait, so a hung backend reads as "failing", not as a hung LiteLLM.
                    "timeout": BACKEND_CHECK_TIMEOUT_S,
                    **({"headers": {"Authorization": f"Bearer {_EDGE_KEY}"}} if backend.via else {}),
                }
                for index, backend in enumerate(topology.readiness_backends)
            ],
        },
    }


def _model_entries(model: Model, topology: Topology) -> list[dict[str, Any]]:
    entries = []
    for backend in model.backends:
        params: dict[str, Any] = {
            # openai/ = any OpenAI-compatible server, such as llama.cpp's.
            "model": f"openai/{model.model_id}",
            "api_base": backend.api_base,
            # llama.cpp needs no key, but the OpenAI client refuses to start without one. A backend on
            # another machine is reached through the edge's forwarder, which takes the edge's key only.
            "api_key": _EDGE_KEY if backend.via else "none",
            # Local models can take minutes on a long prompt; the stack-wide timeouts apply unless the
            # model sets its own.
            "timeout": model.timeout or topology.request_timeout,
            "stream_timeout": model.stream_timeout or topology.stream_timeout,
        }
        entry: dict[str, Any] = {"model_name": model.name, "litellm_params": params}
        if len(model.backends) > 1:
            params["weight"] = backend.weight
        else:
            entry["model_info"] = dict(_NEVER_COOL_DOWN)
        entries.append(entry)
    return entries


def render_litellm_config(topology: Topology, stack: str) -> str:
    header = (
        f"# Rendered by tailnet-llm-gateway from Pulumi.{stack}.yaml. Do not edit: change the stack\n"
        "# settings and render again (python -m tailnet_llm_gateway render).\n"
    )
    return header + yaml.safe_dump(litellm_config(topology), sort_keys=False, default_flow_style=False)
