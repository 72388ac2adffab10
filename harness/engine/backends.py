"""Fake model backends (and echoing apps) in containers on a stack's network, for the engine tests."""

from __future__ import annotations

import docker

from harness.engine.provider import Engine
from harness.engine.traffic import WORD_PAUSE_MS
from harness.stacks import ROOT
from tailnet_llm_gateway.images import LITELLM_IMAGE, parse_image


def fake_backend(
    client: docker.DockerClient, engine: Engine, name: str, network: str = "backend", echo: bool = False
) -> str:
    """A fake llama.cpp (harness/fakes) in a container on the stack's `network`, as `name`; with `echo`,
    an app that echoes and records what it receives instead."""
    container = client.api.create_container(
        parse_image(LITELLM_IMAGE).tagged,
        entrypoint=["python3", "-m", "fakes"],
        working_dir="/srv",
        command=[
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--name",
            name,
            "--stream-pause-ms",
            str(WORD_PAUSE_MS),
            *(["--echo"] if echo else []),
        ],
        name=engine.sub.name(name),
        user="61020:61020",
        labels=engine.sub.label,
        host_config=client.api.create_host_config(
            binds=[f"{ROOT / 'harness' / 'fakes'}:/srv/fakes:ro"],
            network_mode=engine.sub.name(network),
            restart_policy={"Name": "unless-stopped"},
        ),
        networking_config=client.api.create_networking_config(
            {engine.sub.name(network): client.api.create_endpoint_config(aliases=[name])}
        ),
    )
    client.api.start(container["Id"])
    return container["Id"]
