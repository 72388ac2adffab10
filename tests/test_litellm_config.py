"""Guarantees of the rendered LiteLLM config."""

from __future__ import annotations

import re

import yaml

from tailnet_llm_gateway.render.caddyfile.proxy import READINESS_TIMEOUT_S
from tailnet_llm_gateway.render.litellm_config import render_litellm_config
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import build_topology


def test_models_route_to_their_backends_with_the_stack_timeouts(dev_topology):
    config = yaml.safe_load(render_litellm_config(dev_topology, "dev"))
    entries = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    assert entries["local-chat"]["model"] == "openai/local-chat", "LiteLLM would not speak OpenAI to llama.cpp"
    assert entries["local-chat"]["api_base"] == "http://llamacpp:8080/v1", "local-chat would go to another backend"
    assert entries["local-embed"]["api_base"] == "http://llamacpp-embed:8080/v1", (
        "local-embed would go to another backend"
    )
    assert entries["local-chat"]["timeout"] == 1800 and entries["local-chat"]["stream_timeout"] == 1800, (
        "long local generations would be cut off"
    )


def test_per_model_timeout_overrides_the_stack_timeout(dev_values):
    dev_values["models"]["local-chat"]["timeout"] = 60
    config = yaml.safe_load(render_litellm_config(build_topology(Settings.from_mapping(dev_values)), "dev"))
    assert config["model_list"][0]["litellm_params"]["timeout"] == 60, "a model's own timeout was ignored"


def test_master_key_is_read_from_the_environment(dev_topology):
    text = render_litellm_config(dev_topology, "dev")
    config = yaml.safe_load(text)
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY", (
        "the master key would not come from the environment"
    )
    assert not re.search(r"sk-[A-Za-z0-9]", text), "a key literal would sit in the rendered file"


def test_header_trusting_auth_is_never_enabled(dev_topology):
    text = render_litellm_config(dev_topology, "dev")
    assert "oauth2_proxy" not in text, "LiteLLM would trust identity headers that the bypass route passes through"


def test_rendering_is_byte_for_byte_deterministic(dev_values):
    first = render_litellm_config(build_topology(Settings.from_mapping(dev_values)), "dev")
    dev_values["models"] = dict(reversed(list(dev_values["models"].items())))
    assert render_litellm_config(build_topology(Settings.from_mapping(dev_values)), "dev") == first, (
        "the same models in another order would change the config and restart LiteLLM"
    )


def _two_backend_values(dev_values: dict) -> dict:
    dev_values["services"]["llamacpp-b"] = {"port": 8080, "networks": ["backend"]}
    dev_values["models"]["local-chat"] = {
        "backends": [{"service": "llamacpp", "weight": 3}, {"service": "llamacpp-b"}],
        "model": "local-chat",
    }
    return dev_values


def test_a_model_with_several_backends_gets_one_weighted_deployment_each(dev_values):
    config = yaml.safe_load(
        render_litellm_config(build_topology(Settings.from_mapping(_two_backend_values(dev_values))), "dev")
    )
    chat = [m for m in config["model_list"] if m["model_name"] == "local-chat"]
    assert [(m["litellm_params"]["api_base"], m["litellm_params"]["weight"]) for m in chat] == [
        ("http://llamacpp:8080/v1", 3),
        ("http://llamacpp-b:8080/v1", 1),
    ], "LiteLLM would not balance local-chat over both backends in the settings' proportions"
    assert all("model_info" not in m for m in chat), "a failing backend of two would not be left out (cooldown)"


def test_a_single_backend_is_never_put_in_cooldown(dev_topology):
    config = yaml.safe_load(render_litellm_config(dev_topology, "dev"))
    for entry in config["model_list"]:
        assert entry["model_info"]["allowed_fails"] > 0, (
            f"{entry['model_name']}: one 404 from the backend would answer every client 429 for seconds"
        )
    router = config["router_settings"]
    assert router["num_retries"] >= 1 and router["retry_after"] == 0, (
        "a dropped connection would not be retried at once"
    )


def test_anthropic_messages_become_chat_completions(dev_topology):
    config = yaml.safe_load(render_litellm_config(dev_topology, "dev"))
    assert config["litellm_settings"]["use_chat_completions_url_for_anthropic_messages"] is True, (
        "/v1/messages would go to the backend's /v1/responses, which llama.cpp does not serve"
    )


def test_each_backend_has_a_keyed_get_only_readiness_check(dev_values):
    topology = build_topology(Settings.from_mapping(_two_backend_values(dev_values)))
    config = yaml.safe_load(render_litellm_config(topology, "dev"))
    checks = config["general_settings"]["pass_through_endpoints"]
    assert [c["target"] for c in checks] == [
        "http://llamacpp:8080/v1/models",
        "http://llamacpp-b:8080/v1/models",
        "http://llamacpp-embed:8080/v1/models",
    ], "readiness would not ask every backend exactly once"
    for check in checks:
        assert check.get("auth", True) is True and check["methods"] == ["GET"], (
            "a pass-through without the master key would let anyone on proxy-net drive a backend"
        )
        assert 0 < check["timeout"] < READINESS_TIMEOUT_S, "a hung backend would hang the readiness report"
