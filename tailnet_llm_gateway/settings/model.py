"""Typed, validated stack settings, and the two ways to read them.

`Settings.from_mapping` takes the project's keys without their namespace. Two sources feed it
(`stack_config`): `from_stack_file` reads `Pulumi.<stack>.yaml` (for the render CLI, no Pulumi CLI
needed) and `from_pulumi_config` reads the engine's config (for `pulumi up`). Secrets (`masterKey`) are
never part of `Settings`: rendering never needs them, and the program reads them as Pulumi secrets.
Checks that tie settings together (a route to an unknown service, say) live in `topology`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    field_validator,
)

from policy.gateway_contract import TAILNET_NODE, Exposure

from ..addresses import require_hostname, require_tailscale_ip
from ..errors import SettingsError
from .clients import ClientName, ClientSettings
from .containers import EdgeSettings, GatewaySettings
from .fields import ModelName, Name, StrictModel
from .limits import LimitDefaults
from .messages import describe
from .routes import RouteSettings
from .services import MachineName, MachineSettings, ModelSettings, NetworkSettings, ServiceSettings, TlsSettings
from .sources import PROJECT, SECRET_KEYS, read_engine_config, read_stack_file
from .sso import SsoSettings
from .tailnet import NodeSettings, TailnetPolicySettings


class TimeoutSettings(StrictModel):
    request: int = Field(default=1800, gt=0)
    stream: int = Field(default=1800, gt=0)
    # How long a container being replaced (a LiteLLM replica, the edge on a new image) may finish the
    # requests and streams it has before it is stopped: `pulumi up` waits this long at most per container.
    drain: int = Field(default=300, ge=1, le=3600)


# Keys a release renamed: the old key is an error naming the new one (a stack file written for an older
# release must not lose its setting to a default).
RENAMED = {
    ("gateway", "limits"): "gateway.resources (memory, processes and uid of each container; 'limits' are callers')",
    ("edge", "limits"): "edge.resources (memory, processes and uid of the container; 'limits' are callers')",
}


def _no_renamed_keys(values: Mapping[str, Any]) -> None:
    for (section, key), new in RENAMED.items():
        part = values.get(section)
        if isinstance(part, Mapping) and key in part:
            raise SettingsError(f"{section}.{key}", f"is now {new}: rename the key")


class Settings(StrictModel):
    """Everything a stack file says about the gateway, validated field by field."""

    # host-bind: Caddy publishes 443 on the host's tailnet IP with `tailscale cert` files.
    # tailnet-node: a Tailscale container is the gateway's own node; no host port faces the tailnet.
    exposure: Exposure = TAILNET_NODE
    # host-bind: the host's tailnet name. tailnet-node: the node's name (its first label is the
    # node's hostname), e.g. llm.tail0a1b2c.ts.net.
    tailnet_host: str
    tailnet_ip: str | None = None
    tls: TlsSettings | None = None
    node: NodeSettings = NodeSettings()
    networks: dict[Name, NetworkSettings] = Field(min_length=1)
    services: dict[Name, ServiceSettings] = Field(min_length=1)
    # Other machines of the tailnet whose services serve models; the policy grants the gateway their ports.
    machines: dict[MachineName, MachineSettings] = {}
    models: dict[ModelName, ModelSettings] = Field(min_length=1)
    routes: tuple[RouteSettings, ...] = Field(min_length=1)
    gateway: GatewaySettings = GatewaySettings()
    edge: EdgeSettings = EdgeSettings()
    sso: SsoSettings = SsoSettings()
    timeouts: TimeoutSettings = TimeoutSettings()
    tailnet_policy: TailnetPolicySettings
    # API clients, each with a key of its own (the `clientKeys` secret, or generated). None: clients use
    # the master key.
    clients: dict[ClientName, ClientSettings] = {}
    # Per-caller limits every client (and each tailnet login) gets; none by default.
    limits: LimitDefaults = LimitDefaults()

    @field_validator("tailnet_host")
    @classmethod
    def _hostname(cls, value: str) -> str:
        return require_hostname(value)

    @field_validator("tailnet_ip")
    @classmethod
    def _tailscale_ip(cls, value: str | None) -> str | None:
        return None if value is None else require_tailscale_ip(value)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Validate un-namespaced settings; raise SettingsError naming the first bad setting."""
        _no_renamed_keys(values)
        try:
            return cls.model_validate(dict(values))
        except ValidationError as error:
            raise describe(error, cls, extra_keys=SECRET_KEYS) from None

    @classmethod
    def from_stack_file(cls, path: Path, project: str = PROJECT) -> Settings:
        """Read `Pulumi.<stack>.yaml` (no Pulumi CLI needed)."""
        return cls.from_mapping(read_stack_file(path, project))

    @classmethod
    def from_pulumi_config(cls, project: str = PROJECT, stack_file: Path | None = None) -> Settings:
        """Read the engine's config for this project (for `pulumi up`).

        The engine says only whether a whole setting holds a secret; when the stack file is at hand it is
        checked too, so a client key written in plain text beside secret ones is still refused.
        """
        if stack_file is not None and stack_file.exists():
            read_stack_file(stack_file, project)
        return cls.from_mapping(read_engine_config(project))
