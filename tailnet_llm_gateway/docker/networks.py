"""The Docker networks the topology names."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from ..errors import SettingsError
from ..topology import Network


def _lookup(name: str, parent: pulumi.Resource) -> docker.AwaitableGetNetworkResult | None:
    """The Docker network of that name, or None when there is none."""
    try:
        return docker.get_network(name=name, opts=pulumi.InvokeOptions(parent=parent))
    except Exception:  # noqa: BLE001 - the provider answers "no such network" with a failed invoke
        return None


def _check_adoptable(network: Network, found: docker.AwaitableGetNetworkResult) -> None:
    subnets = sorted(c.subnet for c in found.ipam_configs or [] if c.subnet)
    if found.driver != "bridge" or (network.subnet is not None and subnets != [network.subnet]):
        raise SettingsError(
            f"networks.{network.name}",
            f"a Docker network named {network.name} already exists ({found.driver}, subnet "
            f"{', '.join(subnets) or 'none'}) and differs from the settings; set existing: true to use it as it "
            "is, or remove it (docker network rm) once nothing uses it",
        )


class GatewayNetworks(pulumi.ComponentResource):
    """Creates the networks this stack manages and looks up the ones that already exist.

    Guarantees: a managed network is created with its pinned subnet and gateway (when a subnet is set);
    an existing network is only read (an invoke, not a resource), so no `pulumi destroy` can ever delete
    it. Managed networks are shared with other projects (llama.cpp, oauth2-proxy, ...), so they outlive
    the stack: `pulumi destroy` leaves them (it would otherwise fail on their containers), and the next
    `pulumi up` adopts a network of the same name with the same settings instead of creating a second
    one; one that differs is an error naming the setting. `names[n]` is what a container's
    `networks_advanced` should name, and it depends on the network being there.
    """

    names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, networks: tuple[Network, ...], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tailnet-llm-gateway:docker:Networks", name, {}, opts)
        self.names = {}
        self.managed: dict[str, docker.Network] = {}
        for network in networks:
            if network.existing:
                found = docker.get_network_output(name=network.name, opts=pulumi.InvokeOptions(parent=self))
                self.names[network.name] = found.name
                continue
            existing = _lookup(network.name, self)
            if existing is not None:
                _check_adoptable(network, existing)
            ipam = (
                [docker.NetworkIpamConfigArgs(subnet=network.subnet, gateway=network.gateway)]
                if network.subnet
                else None
            )
            created = docker.Network(
                network.name,
                name=network.name,
                driver="bridge",
                ipam_configs=ipam,
                # Other compose projects (llama.cpp, oauth2-proxy, ...) join these networks; not the node's
                # SOCKS5 network, which has no route out and holds the node and the edge alone.
                attachable=not network.internal,
                internal=network.internal,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    retain_on_delete=True,
                    import_=existing.id if existing is not None else None,
                ),
            )
            self.managed[network.name] = created
            self.names[network.name] = created.name
        self.register_outputs({"names": self.names})
