"""The LiteLLM container (`model-gateway`)."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_docker as docker

from policy.gateway_contract import EDGE_KEY_ENV, MASTER_KEY_ENV

from ..gateway_process import LAUNCHER_FILE
from ..render.gateway_auth import GATEWAY_AUTH_FILE
from ..topology import Gateway
from ..topology.gateway import ROLE
from .config_volumes import rendered_config, secret_environment
from .hardening import (
    Health,
    container_options,
    hardened_container_args,
    owned_tmpfs,
)
from .networks import GatewayNetworks
from .pinned_image import PinnedImage

CONFIG_DIR = "/etc/litellm"
CONFIG_FILE = "config.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"


def _health(port: int) -> Health:
    # A raw HTTP/1.0 request from a bare interpreter (-I -S: no site packages, no urllib): a few ms of CPU
    # per probe instead of ~50, which matters at a short interval.
    probe = (
        "import socket,sys;"
        f"s=socket.create_connection(('127.0.0.1',{port}),2);"
        "s.sendall(b'GET /health/liveliness HTTP/1.0\\r\\n\\r\\n');"
        "sys.exit(0 if s.recv(12).endswith(b' 200') else 1)"
    )
    # LiteLLM takes many seconds to import and start; a 3 s interval reports it healthy soon after, and the
    # long start period keeps a slow start on a busy host from counting as failures.
    return Health(
        test=["CMD", "python3", "-I", "-S", "-c", probe], interval="3s", timeout="3s", retries=5, start_period="120s"
    )


class ModelGateway(pulumi.ComponentResource):
    """Runs LiteLLM with the rendered config, as `replicas` containers, reachable by other containers and by
    host apps only.

    Guarantees:
    - each replica's host port binds 127.0.0.1 (or the loopback address the settings give) and nothing
      else: the first on the configured port (host apps use it), the next ones on the ports after it
      (each replica's metrics are its own);
    - every replica is on exactly the networks the topology says, with its own name and the service name
      as aliases on each, so Caddy reaches each replica and other containers reach any of them;
    - the config and its custom auth module (which client is calling, its models and its limits) are the
      renderers' output byte for byte, mounted read-only from a volume its config writer fills; the
      master key and the edge's key arrive only as secret environment variables;
    - a change to the config, image, healthcheck or tmpfs replaces the replicas one at a time: each is
      stopped with SIGTERM and the drain bound to finish its requests and streams (LiteLLM's server
      stops taking new ones at once), replaced, and healthy before the next is touched, so the others
      answer meanwhile; a replica stopped before it has answered once stops at once (its launcher);
    - hardened as `hardening.py` says; healthcheck on `/health/liveliness`.
    """

    containers: list[docker.Container]
    local_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        gateway: Gateway,
        config_yaml: str,
        gateway_auth: str,
        launcher: str,
        tables: Mapping[str, str],
        master_key: pulumi.Input[str],
        edge_key: pulumi.Input[str],
        networks: GatewayNetworks,
        image: PinnedImage,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tailnet-llm-gateway:docker:ModelGateway", name, {}, opts)
        service, resources = gateway.service, gateway.resources

        config = rendered_config(
            self,
            f"{name}-config",
            f"{service.name}-config",
            CONFIG_DIR,
            # The custom auth module sits next to the config: LiteLLM imports it from there.
            # The launcher too: the official image has no such file.
            {CONFIG_FILE: config_yaml, GATEWAY_AUTH_FILE: gateway_auth, LAUNCHER_FILE: launcher},
            ROLE,
            image.ref,
            image.image,
            resources.user,
            # The custom auth reads its client and limit tables again when they change: a client added or
            # revoked, or a limit changed, restarts no replica.
            reread=tables,
        )
        # Every interface of the container's own namespace: the host side is limited by `ports` below.
        process = gateway.process(CONFIG_PATH)
        envs = secret_environment({MASTER_KEY_ENV: master_key, EDGE_KEY_ENV: edge_key}, process.env)
        self.containers = []
        replicas = zip(gateway.replica_names, gateway.replica_resources, gateway.replica_binds, strict=True)
        for index, (replica, own, bind) in enumerate(replicas):
            # Each replica waits for the one before: `pulumi up` replaces them in turn, never together.
            previous = self.containers[-1:]
            self.containers.append(
                docker.Container(
                    f"{name}" if index == 0 else f"{name}-{index + 1}",
                    name=replica,
                    image=image.ref,
                    # The launcher, then the server (granian, or the image's own `litellm`).
                    entrypoints=list(process.entrypoint),
                    command=list(process.args),
                    envs=envs,
                    ports=[docker.ContainerPortArgs(internal=service.port, external=bind.port, ip=bind.host)],
                    networks_advanced=[
                        docker.ContainerNetworksAdvancedArgs(
                            name=networks.names[net], aliases=list(dict.fromkeys([replica, service.name]))
                        )
                        for net in service.networks
                    ],
                    volumes=[config.mount],
                    **hardened_container_args(
                        ROLE,
                        own,
                        tmpfs={"/tmp": owned_tmpfs(own, "256m")},
                        health=_health(service.port),
                        extra_labels=[config.label],
                        drain_s=gateway.drain_s,
                    ),
                    opts=container_options(self, image.image, after=[config.writer, *previous]),
                )
            )
        self.container = self.containers[0]
        self.local_url = pulumi.Output.from_input(gateway.local_api_url)
        self.register_outputs({"containers": [c.name for c in self.containers], "localUrl": self.local_url})
