"""The LiteLLM container (`model-gateway`)."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from .hardening import container_options, hardened_container_args, rendered_file, secret_environment
from .networks import GatewayNetworks
from .pinned_image import PinnedImage
from .settings import ContainerLimits
from .topology import GATEWAY_ENV, MASTER_KEY_ENV, Topology

CONFIG_DIR = "/etc/litellm"
CONFIG_FILE = "config.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"


class ModelGateway(pulumi.ComponentResource):
    """Runs LiteLLM with the rendered config, reachable by other containers and by host apps only.

    Guarantees:
    - its host port binds 127.0.0.1 (or the loopback address the settings give) and nothing else;
    - it is on exactly the networks the topology says, with the service name as its alias on each,
      so Caddy resolves it on the edge network and it resolves its model backends;
    - the uploaded config is the renderer's output byte for byte; the master key arrives only as a
      secret environment variable;
    - hardened as `hardening.py` says; healthcheck on `/health/liveliness`;
    - a change to the config, image, healthcheck or tmpfs replaces the container.
    """

    container: docker.Container
    local_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        topology: Topology,
        config_yaml: str,
        master_key: pulumi.Input[str],
        networks: GatewayNetworks,
        image: PinnedImage,
        limits: ContainerLimits,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tailnet-llm-gateway:docker:ModelGateway", name, {}, opts)
        service = topology.gateway.service
        bind = topology.gateway.host_bind

        config_mount, config_upload = rendered_file(
            self, f"{name}-config", f"{service.name}-config", CONFIG_DIR, CONFIG_FILE, config_yaml
        )
        envs = secret_environment(MASTER_KEY_ENV, master_key, GATEWAY_ENV)
        liveliness = f"http://127.0.0.1:{service.port}/health/liveliness"
        self.container = docker.Container(
            name,
            name=service.name,
            image=image.ref,
            # The image's entrypoint runs `litellm "$@"`. 0.0.0.0 is the container's own namespace:
            # the host side is limited by `ports` below.
            command=[
                "--config", CONFIG_PATH, "--host", "0.0.0.0", "--port", str(service.port),
                "--num_workers", str(topology.gateway.workers),
            ],
            envs=envs,
            ports=[docker.ContainerPortArgs(internal=service.port, external=bind.port, ip=bind.host)],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=networks.names[net], aliases=[service.name])
                for net in service.networks
            ],
            volumes=[config_mount],
            uploads=[config_upload],
            **hardened_container_args(
                "model-gateway",
                limits,
                tmpfs={"/tmp": "rw,noexec,nosuid,size=256m"},
                health_test=[
                    "CMD",
                    "python3",
                    "-c",
                    f"import urllib.request; urllib.request.urlopen('{liveliness}', timeout=5)",
                ],
                start_period="40s",
            ),
            opts=container_options(self, image.image),
        )
        self.local_url = pulumi.Output.from_input(topology.local_api_url)
        self.register_outputs({"container": self.container.name, "localUrl": self.local_url})
