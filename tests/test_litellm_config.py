"""Guarantees of the rendered LiteLLM config."""

from __future__ import annotations

import re

import yaml

from components.render.litellm_config import render_litellm_config
from components.settings import Settings
from components.topology import build_topology


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
