"""The plan: stack settings in, everything the stack deploys out, decided before any resource exists.

`build_plan` is the one place that turns settings into a topology, merges and checks the tailnet policy
and renders every file. The Pulumi program (`__main__.py`), the render CLI and the benchmark all call
it; the components take the plan's parts and only create resources.

    settings -> topology -> plan -> renderers (files) / components (resources)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policy.gateway_contract import Declarations, markers

from .errors import SettingsError
from .gateway_process import LAUNCHER_FILE
from .local_mode import LocalMode, with_overrides
from .render.caddyfile.render import config_id, render_caddyfile
from .render.gateway_auth import (
    GATEWAY_AUTH_FILE,
    GATEWAY_CLIENTS_FILE,
    GATEWAY_LIMITS_FILE,
    render_gateway_auth,
    render_gateway_clients,
    render_gateway_limits,
)
from .render.gateway_start import render_gateway_start
from .render.litellm_config import render_litellm_config
from .render.tailscale_serve import render_serve_config
from .settings import Settings, grammar
from .tailnet.check import Assertion
from .tailnet.policy import checked_policy
from .topology import READINESS_PATH, Node, Topology, build_topology


@dataclass(frozen=True)
class RenderedFiles:
    """Every file the stack runs with, as text. None of them holds a secret."""

    caddyfile: str
    litellm_config: str
    # LiteLLM's custom auth (who is calling, which models they may use), read from beside its config.
    gateway_auth: str
    # The launcher each replica starts under (it stops a replica still starting at once).
    gateway_start: str
    # The clients the custom auth knows and their models; LiteLLM reads it again when it changes.
    gateway_clients: str
    # Each caller's limits; LiteLLM reads it again when it changes.
    gateway_limits: str
    tailnet_policy: str

    @property
    def edge_config_id(self) -> str:
        """The id the running edge reports for this Caddyfile (its health listener's /config-id)."""
        return config_id(self.caddyfile)

    def by_name(self) -> dict[str, str]:
        """The files as the render CLI writes them."""
        return {
            markers.CADDYFILE: self.caddyfile,
            "litellm.yaml": self.litellm_config,
            GATEWAY_AUTH_FILE: self.gateway_auth,
            LAUNCHER_FILE: self.gateway_start,
            GATEWAY_CLIENTS_FILE: self.gateway_clients,
            GATEWAY_LIMITS_FILE: self.gateway_limits,
            "tailnet-policy.hujson": self.tailnet_policy,
        }


@dataclass(frozen=True)
class NodePlan:
    """The gateway's own Tailscale node (tailnet-node mode) and the serve config it runs: one optional part,
    so a stack has both or neither."""

    node: Node
    serve_config: str

    def files_by_name(self) -> dict[str, str]:
        return {"tailscale-serve.json": self.serve_config}


@dataclass(frozen=True)
class Plan:
    stack: str
    topology: Topology
    files: RenderedFiles
    # The outcome of every test of the merged tailnet policy (none failed, or there is no plan).
    policy_assertions: tuple[Assertion, ...]
    # Only a tailnet-node stack has one.
    node: NodePlan | None = None

    def files_by_name(self) -> dict[str, str]:
        """Every rendered file, as the render CLI writes them."""
        return {**self.files.by_name(), **(self.node.files_by_name() if self.node is not None else {})}

    @property
    def declarations(self) -> Declarations:
        """What the settings declare, for the policy pack: it sees resources, never settings."""
        topology = self.topology
        return {
            # Each route as its auth mode declares it.
            "routes": [r.mode.declaration(r) for r in topology.routes],
            # The edge's own key-less, SSO-less readiness report, which may ask only LiteLLM.
            "readiness": {"path": READINESS_PATH, "upstream": topology.gateway.service.name},
            "services": {s.name: list(s.networks) for s in topology.services},
            "edgeNetwork": topology.edge_network,
            "tailnet": {
                "tag": topology.tailnet.tag,
                "target": topology.tailnet.target,
                # Who may reach the gateway: the stack's audiences and those of its tailnet routes.
                "audiences": list(
                    dict.fromkeys(
                        [*topology.tailnet.audiences, *(a for _, auds in topology.tailnet.capabilities for a in auds)]
                    )
                ),
            },
            "exposure": topology.site.exposure,
            "authKeyReusable": self.node is not None and self.node.node.auth_key_reusable,
            "machines": {m.alias: m.address for m in topology.tailnet.machines},
        }


def build_plan(
    settings: Settings,
    stack: str,
    project_dir: Path,
    local: LocalMode | None = None,
) -> Plan:
    """Cross-check the settings, merge and check the tailnet policy, render every file.

    `local` is the local check mode (render --upstream, --listen, ...; see LocalMode): it moves what the
    files say, never the policy.
    Raises SettingsError (PolicyTestFailure for a failing policy test) before anything is rendered.
    """
    try:
        # The name reaches every rendered file's header.
        grammar.stack_name(stack)
    except ValueError as error:
        raise SettingsError("stack", str(error)) from None
    topology = build_topology(settings)
    policy, assertions = checked_policy(topology.tailnet, project_dir)
    topology = with_overrides(topology, local)
    files = RenderedFiles(
        caddyfile=render_caddyfile(topology, stack),
        litellm_config=render_litellm_config(topology, stack),
        gateway_auth=render_gateway_auth(topology, stack),
        gateway_start=render_gateway_start(),
        gateway_clients=render_gateway_clients(topology),
        gateway_limits=render_gateway_limits(topology),
        tailnet_policy=policy,
    )
    node = None if topology.node is None else NodePlan(topology.node, render_serve_config(topology))
    return Plan(stack=stack, topology=topology, files=files, policy_assertions=assertions, node=node)
