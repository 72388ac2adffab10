"""The whole gateway, wired from one topology."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_random as random

from .model_gateway import ModelGateway
from .networks import GatewayNetworks
from .pinned_image import PinnedImage
from .render.caddyfile import render_caddyfile
from .render.litellm_config import render_litellm_config
from .render.tailscale_serve import render_serve_config
from .reverse_proxy import ReverseProxy
from .settings import Settings
from .tailnet_acl import TailnetPolicy
from .tailnet_node import TailnetNode
from .tailnet_policy import merged_policy, read_policy_base, require_tests_pass
from .topology import Topology, build_topology


class GatewayStack(pulumi.ComponentResource):
    """Networks, images, LiteLLM, Caddy, the tailnet policy and (tailnet-node mode) the gateway's
    Tailscale node, for one stack's settings.

    Guarantees: every artifact comes from the renderers for the topology built from these settings
    (so the containers run exactly what `python -m components render` writes); the tailnet policy is
    the merged policy whose own tests pass offline, applied only when `tailnetPolicy.manage` is on
    (otherwise no Tailscale resource and no Tailscale credentials are needed); the master key is the
    `masterKey` secret or, when that is unset, a generated 48-character key; it is a secret output and
    reaches the containers only as a secret.
    """

    topology: Topology
    api_base_url: pulumi.Output[str]
    api_routes: pulumi.Output[dict[str, str]]
    local_api_url: pulumi.Output[str]
    models: pulumi.Output[list[str]]
    master_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        settings: Settings,
        stack: str,
        project_dir: Path,
        master_key: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Cross-checks first: bad settings or a failing policy test stop before any resource exists.
        self.topology = topology = build_topology(settings)
        self.tailnet_policy = merged_policy(topology, *read_policy_base(topology, project_dir))
        require_tests_pass(self.tailnet_policy)
        # What the settings declare, for the policy pack: it cannot see settings, only resources.
        declared = {
            "routes": [{"path": r.path, "auth": r.auth, "upstream": r.upstream.name if r.upstream else None}
                       for r in topology.routes],
            "services": {s.name: list(s.networks) for s in topology.services},
            "edgeNetwork": topology.edge_network,
            "tailnet": {"tag": topology.tailnet.tag, "target": topology.tailnet.target,
                        "audiences": list(topology.tailnet.audiences)},
            "exposure": topology.site.exposure,
            "authKeyReusable": settings.node.auth_key_reusable,
        }
        super().__init__("tailnet-llm-gateway:index:GatewayStack", name, declared, opts)
        child = pulumi.ResourceOptions(parent=self)

        if master_key is None:
            # LiteLLM expects keys to start with sk-; special characters would need quoting in headers.
            generated = random.RandomPassword(f"{name}-master-key", length=48, special=False, opts=child)
            master_key = pulumi.Output.concat("sk-", generated.result)
        self.master_key = pulumi.Output.secret(master_key)

        self.networks = GatewayNetworks(f"{name}-networks", topology.networks, opts=child)
        self.gateway = ModelGateway(
            f"{name}-model-gateway",
            topology,
            render_litellm_config(topology, stack),
            self.master_key,
            self.networks,
            PinnedImage(f"{name}-litellm-image", settings.gateway.image_ref, opts=child),
            settings.gateway.limits,
            opts=child,
        )
        self.proxy = ReverseProxy(
            f"{name}-edge",
            topology,
            render_caddyfile(topology, stack),
            self.master_key,
            self.networks,
            PinnedImage(f"{name}-caddy-image", settings.edge.image_ref, opts=child),
            settings.edge.limits,
            https_port=settings.edge.https_port,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.gateway]),
        )

        policy = settings.tailnet_policy
        if policy.manage:
            self.tailnet = TailnetPolicy(
                f"{name}-tailnet-policy",
                self.tailnet_policy,
                overwrite_existing=policy.overwrite_existing,
                device_name=settings.tailnet_host if policy.tag_device else None,
                device_tag=policy.tag if policy.tag_device else None,
                opts=child,
            )

        if topology.site.exposure == "tailnet-node":
            # The node's auth key carries the gateway tag, which the policy must own first.
            after_policy = [self.tailnet.acl] if policy.manage else []
            self.node = TailnetNode(
                f"{name}-node",
                topology,
                render_serve_config(topology),
                settings.node,
                self.networks,
                PinnedImage(f"{name}-tailscale-image", settings.node.image_ref, opts=child),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.proxy, *after_policy]),
            )

        self.api_base_url = pulumi.Output.from_input(topology.api_base_url)
        self.api_routes = pulumi.Output.from_input({r.path: topology.base_url(r) for r in topology.api_routes})
        self.local_api_url = pulumi.Output.from_input(topology.local_api_url)
        self.models = pulumi.Output.from_input([m.name for m in topology.models])
        self.register_outputs(
            {
                "apiBaseUrl": self.api_base_url,
                "apiRoutes": self.api_routes,
                "localApiUrl": self.local_api_url,
                "models": self.models,
                "masterKey": self.master_key,
            }
        )
