"""The public API: the whole gateway as one ComponentResource that any Pulumi program can add.

    from tailnet_llm_gateway import TailnetLLMGateway

    gateway = TailnetLLMGateway("gateway", {"tailnetHost": ..., "services": ..., ...})

The settings are the stack file's keys without their namespace (or a `Settings` already read), checked
exactly as `pulumi up` on this repository's program checks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from .errors import SettingsError
from .plan import Plan, build_plan
from .settings import SECRET_KEYS, Settings
from .stack import GatewayStack


def settings_plan(settings: Settings | Mapping[str, Any], stack: str, project_dir: Path) -> Plan:
    """The plan for these settings; SettingsError naming the first bad one."""
    if not isinstance(settings, Settings):
        for key in sorted(SECRET_KEYS & set(settings)):
            # A mapping is plain config: a key in it would reach the state unencrypted.
            raise SettingsError(key, "is a secret: pass it as master_key= (a Pulumi secret), not in the settings")
        settings = Settings.from_mapping(settings)
    return build_plan(settings, stack, project_dir)


class TailnetLLMGateway(GatewayStack):
    """The gateway (networks, LiteLLM, Caddy, the tailnet policy, in tailnet-node mode its own Tailscale
    node) from one set of settings, every resource a child of this component.

    Guarantees: those of `GatewayStack` (what it registers is exactly what this repository's program
    registers for the same settings); bad settings stop the program before any resource exists, with one
    line naming the setting. `project_dir` is where files the settings name are read from (the tailnet
    policy's base file); default: the directory the program runs in, as Pulumi runs it from its project.
    `stack` names the rendered files' stack; default: the Pulumi stack.
    """

    def __init__(
        self,
        name: str,
        settings: Settings | Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
        *,
        master_key: pulumi.Input[str] | None = None,
        client_keys: pulumi.Input[Mapping[str, str]] | None = None,
        stack: str | None = None,
        project_dir: Path | None = None,
    ) -> None:
        try:
            plan = settings_plan(settings, stack or pulumi.get_stack(), project_dir or Path.cwd())
            # Wiring can still meet the host: a Docker network of the same name with other settings.
            super().__init__(name, plan, master_key=master_key, client_keys=client_keys, opts=opts)
        except SettingsError as error:
            # One line naming the setting; Pulumi prints a RunError without a traceback.
            raise pulumi.RunError(str(error)) from None
