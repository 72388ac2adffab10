"""The whole gateway, wired from one plan."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_random as random

from .client_config import client_output
from .docker.model_gateway import ModelGateway
from .docker.networks import GatewayNetworks
from .docker.pinned_image import PinnedImage
from .docker.reverse_proxy import ReverseProxy
from .docker.tailnet_node import TailnetNode
from .plan import Plan
from .render.gateway_auth import GATEWAY_CLIENTS_FILE, GATEWAY_LIMITS_FILE
from .tailscale.policy import TailnetPolicy
from .topology import MASTER_CLIENT, Client


class GatewayStack(pulumi.ComponentResource):
    """Networks, images, LiteLLM, Caddy, the tailnet policy and (tailnet-node mode) the gateway's
    Tailscale node, for one plan.

    Guarantees: every file a container runs is the plan's rendered text (so the containers run exactly
    what `python -m tailnet_llm_gateway render` writes); the tailnet policy is the plan's merged policy, whose
    own tests passed offline, applied only when the settings manage it (otherwise no Tailscale resource
    and no Tailscale credentials are needed); the master key is the `masterKey` secret or, when that is
    unset, a generated 48-character key; it is a secret output and reaches the containers only as a
    secret, and the edge holds it only when it is the one client's key (no named clients). The edge
    speaks to LiteLLM with a generated key of its own, which LiteLLM honours only for a request naming
    one known client, never as its admin. Each named client has a key of its own (`clientKeys.<name>`,
    or generated for it alone), which only the edge holds besides the client; a secret output per
    client carries its key, base URLs and models. The component decides nothing itself: it wires the plan.
    """

    api_base_url: pulumi.Output[str]
    api_routes: pulumi.Output[dict[str, str]]
    local_api_url: pulumi.Output[str]
    models: pulumi.Output[list[str]]
    master_key: pulumi.Output[str]
    # Per client: what it needs to connect (key, base URLs, models); each a secret.
    clients: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(
        self,
        name: str,
        plan: Plan,
        master_key: pulumi.Input[str] | None = None,
        client_keys: pulumi.Input[Mapping[str, str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        topology = plan.topology
        # What the settings declare, for the policy pack: it cannot see settings, only resources.
        super().__init__("tailnet-llm-gateway:index:GatewayStack", name, plan.declarations, opts)
        child = pulumi.ResourceOptions(parent=self)

        # First: it may refuse a Docker network of the same name with other settings, before anything exists.
        self.networks = GatewayNetworks(f"{name}-networks", topology.networks, opts=child)
        if master_key is None:
            # LiteLLM expects keys to start with sk-; special characters would need quoting in headers.
            generated = random.RandomPassword(f"{name}-master-key", length=48, special=False, opts=child)
            master_key = pulumi.Output.concat("sk-", generated.result)
        self.master_key = pulumi.Output.secret(master_key)
        # The edge's credential toward LiteLLM; never handed to anyone else, so it needs no output.
        generated_edge_key = random.RandomPassword(f"{name}-edge-key", length=48, special=False, opts=child)
        self.edge_key: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.concat("sk-", generated_edge_key.result))
        keys = {client.name: self._client_key(name, client, client_keys, child) for client in topology.clients}

        # Whose key each of the edge's key files holds is the topology's to say; None is the edge's own.
        def secret(owner: Client | None) -> pulumi.Input[str]:
            return self.edge_key if owner is None else self.master_key if owner is MASTER_CLIENT else keys[owner.name]

        edge_keys = {file_name: secret(owner) for file_name, owner in topology.edge_key_files}
        self.gateway = ModelGateway(
            f"{name}-model-gateway",
            topology.gateway,
            plan.files.litellm_config,
            plan.files.gateway_auth,
            plan.files.gateway_start,
            {GATEWAY_CLIENTS_FILE: plan.files.gateway_clients, GATEWAY_LIMITS_FILE: plan.files.gateway_limits},
            self.master_key,
            self.edge_key,
            self.networks,
            PinnedImage(f"{name}-litellm-image", topology.gateway.image, opts=child),
            opts=child,
        )
        self.proxy = ReverseProxy(
            f"{name}-edge",
            topology.edge,
            topology.site,
            plan.files.caddyfile,
            plan.files.edge_config_id,
            edge_keys,
            self.networks,
            PinnedImage(f"{name}-caddy-image", topology.edge.image, opts=child),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.gateway]),
        )

        access = topology.tailnet
        after_policy: list[pulumi.Resource] = []
        if access.manage:
            self.tailnet = TailnetPolicy(
                f"{name}-tailnet-policy",
                plan.files.tailnet_policy,
                overwrite_existing=access.overwrite_existing,
                device_name=access.tagged_device,
                device_tag=access.tag if access.tagged_device else None,
                opts=child,
            )
            after_policy.append(self.tailnet.acl)

        if plan.node is not None:
            # The node's auth key carries the gateway tag, which the policy must own first.
            self.node = TailnetNode(
                f"{name}-node",
                plan.node.node,
                plan.node.serve_config,
                self.networks,
                PinnedImage(f"{name}-tailscale-image", plan.node.node.image, opts=child),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.proxy, *after_policy]),
            )

        self.edge_config_id = pulumi.Output.from_input(self.proxy.config_id)
        self.api_base_url = pulumi.Output.from_input(topology.api_base_url)
        self.api_routes = pulumi.Output.from_input({r.path: topology.base_url(r) for r in topology.api_routes})
        self.local_api_url = pulumi.Output.from_input(topology.local_api_url)
        self.models = pulumi.Output.from_input([m.name for m in topology.models])
        self.clients = {
            client.name: pulumi.Output.secret(
                pulumi.Output.all(
                    name=client.name,
                    key=keys[client.name],
                    baseUrls={r.path: topology.base_url(r) for r in topology.routes_of(client)},
                    models=list(topology.models_of(client)),
                )
            )
            for client in topology.clients
        }
        self.register_outputs(
            {
                "apiBaseUrl": self.api_base_url,
                "apiRoutes": self.api_routes,
                "localApiUrl": self.local_api_url,
                "models": self.models,
                "masterKey": self.master_key,
                "edgeConfigId": self.edge_config_id,
                **{client_output(n): data for n, data in self.clients.items()},
            }
        )

    @staticmethod
    def _client_key(
        name: str,
        client: Client,
        configured: pulumi.Input[Mapping[str, str]] | None,
        opts: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """The client's key: `clientKeys.<name>` when set, else generated for it alone. Bumping its
        `keyVersion` makes a new one; no other client's key changes."""
        generated = random.RandomPassword(
            f"{name}-client-{client.name}",
            length=40,
            special=False,
            keepers={"keyVersion": str(client.key_version)},
            opts=opts,
        )
        chosen = pulumi.Output.from_input(configured or {}).apply(lambda keys: (keys or {}).get(client.name))
        return pulumi.Output.secret(
            pulumi.Output.all(chosen, generated.result).apply(lambda pair: pair[0] or f"sk-{pair[1]}")
        )
