"""Topology -> LiteLLM proxy config (YAML). Pure and deterministic.

The master key is referenced as `os.environ/LITELLM_MASTER_KEY`, never written. Header-trusting auth
(`enable_oauth2_proxy_auth`) is never enabled: the bypass route passes client headers through.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..topology import MASTER_KEY_ENV, Model, Topology


def litellm_config(topology: Topology) -> dict[str, Any]:
    return {
        "model_list": [_model_entry(model, topology) for model in topology.models],
        "litellm_settings": {
            "request_timeout": topology.request_timeout,
            # No callbacks home: the gateway talks only to the backends it is given.
            "telemetry": False,
        },
        "general_settings": {
            # Read from the container environment (a Pulumi secret), so it is never in this file.
            "master_key": f"os.environ/{MASTER_KEY_ENV}",
        },
    }


def _model_entry(model: Model, topology: Topology) -> dict[str, Any]:
    params: dict[str, Any] = {
        # openai/ = any OpenAI-compatible server, such as llama.cpp's.
        "model": f"openai/{model.model_id}",
        "api_base": model.api_base,
        # llama.cpp needs no key, but the OpenAI client refuses to start without one.
        "api_key": "none",
        # Local models can take minutes on a long prompt; the stack-wide timeouts apply unless the
        # model sets its own.
        "timeout": model.timeout or topology.request_timeout,
        "stream_timeout": model.stream_timeout or topology.stream_timeout,
    }
    return {"model_name": model.name, "litellm_params": params}


def render_litellm_config(topology: Topology, stack: str) -> str:
    header = (
        f"# Rendered by tailnet-llm-gateway from Pulumi.{stack}.yaml. Do not edit: change the stack\n"
        "# settings and render again (python -m components render).\n"
    )
    return header + yaml.safe_dump(litellm_config(topology), sort_keys=False, default_flow_style=False)
