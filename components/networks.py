"""The Docker networks the topology names."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from .topology import Network


class GatewayNetworks(pulumi.ComponentResource):
    """Creates the networks this stack manages and looks up the ones that already exist.

    Guarantees: a managed network is created with its pinned subnet (when one is set); an existing
    network is only read (an invoke, not a resource), so no `pulumi destroy` can ever delete it.
    `names[n]` is what a container's `networks_advanced` should name, and it depends on the network
    being there.
    """

    names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, networks: tuple[Network, ...], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tailnet-llm-gateway:docker:Networks", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.names = {}
        self.managed: dict[str, docker.Network] = {}
        for network in networks:
            if network.existing:
                found = docker.get_network_output(name=network.name, opts=pulumi.InvokeOptions(parent=self))
                self.names[network.name] = found.name
                continue
            ipam = [docker.NetworkIpamConfigArgs(subnet=network.subnet)] if network.subnet else None
            created = docker.Network(
                network.name,
                name=network.name,
                driver="bridge",
                ipam_configs=ipam,
                # Other compose projects (llama.cpp, oauth2-proxy, ...) join these networks.
                attachable=True,
                opts=child,
            )
            self.managed[network.name] = created
            self.names[network.name] = created.name
        self.register_outputs({"names": self.names})
