"""Typed, validated stack settings, and the two ways to read them.

`Settings.from_mapping` takes the project's keys without their namespace. Two sources feed it
(`stack_config`): `from_stack_file` reads `Pulumi.<stack>.yaml` (for the render CLI, no Pulumi CLI
needed) and `from_pulumi_config` reads the engine's config (for `pulumi up`). Secrets (`masterKey`) are
never part of `Settings`: rendering never needs them, and the program reads them as Pulumi secrets.
Checks that tie settings together (a route to an unknown service, say) live in `topology`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from policy.gateway_contract import SHARED_UIDS

from ..addresses import HostPort, require_hostname, require_loopback_bind, require_tailscale_ip
from ..gateway_process import Server
from ..images import CADDY_IMAGE, LITELLM_IMAGE, TAILSCALE_IMAGE, ImageRef, parse_image
from . import grammar
from .messages import describe
from .sources import PROJECT, SECRET_KEYS, read_engine_config, read_stack_file

Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]


def _image(text: str) -> str:
    parse_image(text)
    return text


Image = Annotated[str, AfterValidator(_image)]
# Settings that reach a rendered file, each checked against its grammar (grammar.py).
RoutePattern = Annotated[str, AfterValidator(grammar.request_path)]
ExactPath = Annotated[str, AfterValidator(grammar.exact_path)]
HeaderName = Annotated[str, AfterValidator(grammar.header_name)]
ModelName = Annotated[str, AfterValidator(grammar.model_name)]
Principal = Annotated[str, AfterValidator(grammar.principal)]


class _Model(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class TlsSettings(_Model):
    """Certificate files that `tailscale cert` wrote into a directory on the Docker host."""

    mode: Literal["tailscale-cert-files"] = "tailscale-cert-files"
    cert_dir: Annotated[str, AfterValidator(grammar.absolute_directory)]
    # File names inside certDir.
    cert_file: Annotated[str, AfterValidator(grammar.file_name)] = "tailnet.crt"
    key_file: Annotated[str, AfterValidator(grammar.file_name)] = "tailnet.key"


class NetworkSettings(_Model):
    subnet: str | None = None
    # An existing network is looked up by name and never created or deleted by this stack.
    existing: bool = False


class ServiceSettings(_Model):
    port: Port
    networks: tuple[Name, ...] = Field(min_length=1)
    # The name other containers resolve; Docker DNS answers for the service name by default.
    host: Annotated[str, AfterValidator(grammar.host)] | None = None


class BackendRef(_Model):
    """One backend serving a model, and its share of the requests (LiteLLM's `weight`)."""

    service: Name
    weight: int = Field(default=1, ge=1, le=100)


class ModelSettings(_Model):
    # One backend (`backend: llamacpp`), or several that LiteLLM balances and fails over between.
    backend: Name | None = None
    backends: tuple[BackendRef, ...] | None = Field(default=None, min_length=1)
    model: ModelName
    api_path: ExactPath = "/v1"
    timeout: int | None = Field(default=None, gt=0)
    stream_timeout: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_way_to_name_backends(self) -> ModelSettings:
        if (self.backend is None) == (self.backends is None):
            raise ValueError("set exactly one of 'backend' and 'backends'")
        return self

    @property
    def backend_refs(self) -> tuple[BackendRef, ...]:
        return self.backends if self.backends is not None else (BackendRef(service=self.backend or ""),)


def _audience(value: str) -> str:
    # Who may reach the gateway: never everyone. `*` and autogroup:danger-all include outsiders.
    if value in ("*", "autogroup:danger-all") or value.startswith("autogroup:") and value != "autogroup:member":
        raise ValueError(f"{value!r} is too broad; name groups, users or tags (or autogroup:member)")
    return grammar.principal(value)


# sso: a browser session (forward_auth). bearer: a client's key. tailnet: the caller's tailnet identity, as the
# gateway's own Tailscale node vouches for it (tailnet-node mode). none: health and SSO endpoints.
AuthMode = Literal["sso", "bearer", "tailnet", "none"]
API_AUTH = ("bearer", "tailnet")
# How an API client may present its key: `Authorization: Bearer` (OpenAI's SDKs), `x-api-key` (Anthropic's),
# `api-key` (Azure's).
KeyHeader = Literal["authorization", "x-api-key", "api-key"]
_ORIGIN = re.compile(r"^https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
# An application capability is named after a domain its owner controls (Tailscale's convention).
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_CAPABILITY = re.compile(rf"^{_LABEL}(\.{_LABEL})+/[A-Za-z0-9][A-Za-z0-9/_.-]*$")


class RouteSettings(_Model):
    path: RoutePattern
    upstream: Name | None = None
    # A fixed answer (health checks): plain text, answered as written.
    respond: Annotated[str, AfterValidator(grammar.fixed_text)] | None = None
    strip_prefix: bool = False
    auth: AuthMode
    # For API routes: the only sub-paths (after the prefix strip) the edge forwards. Required for an
    # upstream other than LiteLLM; for LiteLLM, a subset of the endpoints API clients need (the default).
    allow_paths: tuple[RoutePattern, ...] | None = None
    # For bearer routes: the headers a client may put its key in (default: all three).
    key_headers: tuple[KeyHeader, ...] | None = Field(default=None, min_length=1)
    # For API routes: browser origins whose pages may call the API (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    # For tailnet routes: the application capability the tailnet policy grants its callers (default:
    # <tailnetHost>/cap/<route>), and who gets it (default: tailnetPolicy.audiences).
    capability: str | None = None
    audiences: tuple[Annotated[str, AfterValidator(_audience)], ...] | None = Field(default=None, min_length=1)

    @field_validator("capability")
    @classmethod
    def _capability_name(cls, value: str | None) -> str | None:
        if value is not None:
            if not _CAPABILITY.fullmatch(value):
                raise ValueError(f"{value!r} is not a capability name such as example.com/cap/llm")
            if value.startswith("tailscale.com/"):
                raise ValueError(f"{value!r}: tailscale.com/ capabilities are Tailscale's own")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme and host (and port), such as https://chat.example.com; "
                    "'*' is refused, since any page could then use the API"
                )
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RouteSettings:
        if (self.upstream is None) == (self.respond is None):
            raise ValueError("set exactly one of 'upstream' and 'respond'")
        if self.strip_prefix and not self.path.endswith("/*"):
            raise ValueError("stripPrefix needs a prefix path ending in /*")
        if self.respond is not None and self.auth != "none":
            raise ValueError("a 'respond' route serves a fixed body; its auth must be 'none'")
        for name, value, modes in (
            ("allowPaths", self.allow_paths, API_AUTH),
            ("corsOrigins", self.cors_origins or None, API_AUTH),
            ("keyHeaders", self.key_headers, ("bearer",)),
            ("capability", self.capability, ("tailnet",)),
            ("audiences", self.audiences, ("tailnet",)),
        ):
            if value is not None and self.auth not in modes:
                raise ValueError(f"{name} applies only to {' and '.join(modes)} routes")
        return self

    @property
    def accepted_key_headers(self) -> tuple[KeyHeader, ...]:
        if self.auth != "bearer":
            return ()
        return self.key_headers if self.key_headers is not None else ("authorization", "x-api-key", "api-key")


ClientName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=32)]


class ClientSettings(_Model):
    """One API client (a laptop, a CI job, a tool): its own key, the API routes and models it may use."""

    # Paths of bearer routes, as written in `routes` (default: every bearer route).
    routes: tuple[RoutePattern, ...] | None = Field(default=None, min_length=1)
    # Model names (default: every model).
    models: tuple[ModelName, ...] | None = Field(default=None, min_length=1)
    # Raise it to rotate a generated key (the next `pulumi up` makes a new one for this client only).
    key_version: int = Field(default=1, ge=1)


# Headers the edge, the browser or the proxy itself rely on: an SSO answer copied into one of them would
# be stripped from every client request (so no key would reach the edge) or would confuse the proxy.
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "Host",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
        "Content-Type",
        "Origin",
        "Via",
        "X-Api-Key",
        "Api-Key",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
    )
)
_RESERVED_PREFIXES = ("sec-", "tailscale-", "access-control-", "proxy-")


class SsoSettings(_Model):
    service: Name = "oauth2-proxy"
    auth_path: ExactPath = "/oauth2/auth"
    start_path: ExactPath = "/oauth2/start"
    # SSO response header -> header the protected upstreams trust.
    copy_headers: dict[HeaderName, HeaderName] = Field(
        default_factory=lambda: {
            "X-Auth-Request-Email": "X-Forwarded-Email",
            "X-Auth-Request-User": "X-Forwarded-User",
            "X-Auth-Request-Preferred-Username": "X-Forwarded-Preferred-Username",
        }
    )

    @field_validator("copy_headers")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value.values():
            if target.lower() in _RESERVED_HEADERS or target.lower().startswith(_RESERVED_PREFIXES):
                raise ValueError(
                    f"{target!r} is a header the edge or browsers rely on; copy into X-Forwarded-User etc."
                )
        return value


class ContainerLimits(_Model):
    memory_mb: int = Field(default=512, ge=64)
    pids: int = Field(default=256, ge=16)
    # Non-root by default; `uid:gid` so the policy can check it without resolving names.
    user: str = Field(default="61002:61002", pattern=r"^[1-9][0-9]*:[1-9][0-9]*$")

    @field_validator("user")
    @classmethod
    def _own_uid(cls, value: str) -> str:
        uid = int(value.split(":")[0])
        if uid < 1000 or uid in SHARED_UIDS:
            raise ValueError(
                f"uid {uid} is shared with host users or other images, and the process limit counts every "
                "process of a uid on the host; use a uid of its own, such as 61001"
            )
        return value

    @property
    def uid(self) -> int:
        return int(self.user.split(":")[0])

    @property
    def gid(self) -> int:
        return int(self.user.split(":")[1])


class GatewaySettings(_Model):
    service: Name = "model-gateway"
    host_bind: str = "127.0.0.1:11435"
    # The HTTP server that runs LiteLLM (see components/gateway_process.py for what each costs).
    server: Server = "granian"
    # Worker processes. One by default: each holds a whole LiteLLM (about 300 MiB), and with two on a
    # 2-core host uvicorn killed workers that missed its 5 s health ping while still importing LiteLLM.
    workers: int = Field(default=1, ge=1, le=32)
    # LiteLLM containers behind the edge. With two, a config change replaces one at a time while the other
    # answers (each drained first); with one, requests wait at the edge while it restarts.
    replicas: int = Field(default=2, ge=1, le=8)
    image: Image = LITELLM_IMAGE
    limits: ContainerLimits = ContainerLimits(memory_mb=2048, pids=512)

    @field_validator("host_bind")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        return str(require_loopback_bind(value))

    @property
    def bind(self) -> HostPort:
        return require_loopback_bind(self.host_bind)

    @property
    def image_ref(self) -> ImageRef:
        return parse_image(self.image)


class EdgeSettings(_Model):
    network: Name = "proxy-net"
    https_port: Port = 443
    image: Image = CADDY_IMAGE
    limits: ContainerLimits = ContainerLimits(memory_mb=256, pids=128, user="61001:61001")

    @property
    def image_ref(self) -> ImageRef:
        return parse_image(self.image)


_TAG = r"^tag:[A-Za-z0-9][A-Za-z0-9-]*$"


def _identity(value: str) -> str:
    # A test identity is one principal: a user or a tag, as Tailscale's policy `tests` expect.
    if not (value.startswith("tag:") or "@" in value):
        raise ValueError(f"{value!r} is not a user@domain or tag:name to test with")
    return grammar.principal(value, "a user@domain or tag:name to test with")


Identity = Annotated[str, AfterValidator(_identity)]


class PolicyTestSettings(_Model):
    """Who the policy's own `tests` check: members must reach 443, outsiders must not."""

    members: tuple[Identity, ...] = Field(min_length=1)
    outsiders: tuple[Identity, ...] = Field(min_length=1)


class TailnetPolicySettings(_Model):
    """The gateway's part of the tailnet policy and how it is applied."""

    tag: str = Field(default="tag:llm-gateway", pattern=_TAG)
    owners: tuple[Principal, ...] = ("autogroup:admin",)
    audiences: tuple[Annotated[str, AfterValidator(_audience)], ...] = Field(min_length=1)
    tests: PolicyTestSettings
    # The user's own policy file (HuJSON, in this repository, relative to Pulumi.yaml); everything in
    # it is kept, and the gateway's entries are merged in.
    base: Annotated[str, AfterValidator(grammar.relative_file)] | None = None
    # Apply the merged policy with the Tailscale provider. Off: render and check it only.
    manage: bool = False
    # The first apply refuses to replace a policy that was ever edited, unless this is set.
    overwrite_existing: bool = False
    # Also tag the gateway host (the device named tailnetHost) with `tag`.
    tag_device: bool = False


class NodeSettings(_Model):
    """The Tailscale container that joins the tailnet as the gateway's own node (tailnet-node mode)."""

    image: Image = TAILSCALE_IMAGE
    # A reusable key could join more machines under the gateway's tag if it leaked; off unless needed.
    auth_key_reusable: bool = False
    auth_key_expiry_days: int = Field(default=90, ge=1, le=90)
    memory_mb: int = Field(default=256, ge=64)
    pids: int = Field(default=256, ge=16)

    @property
    def image_ref(self) -> ImageRef:
        return parse_image(self.image)


class TimeoutSettings(_Model):
    request: int = Field(default=1800, gt=0)
    stream: int = Field(default=1800, gt=0)
    # How long a container being replaced (a LiteLLM replica, the edge on a new image) may finish the
    # requests and streams it has before it is stopped: `pulumi up` waits this long at most per container.
    drain: int = Field(default=300, ge=1, le=3600)


class Settings(_Model):
    """Everything a stack file says about the gateway, validated field by field."""

    # host-bind: Caddy publishes 443 on the host's tailnet IP with `tailscale cert` files.
    # tailnet-node: a Tailscale container is the gateway's own node; no host port faces the tailnet.
    exposure: Literal["host-bind", "tailnet-node"] = "tailnet-node"
    # host-bind: the host's tailnet name. tailnet-node: the node's name (its first label is the
    # node's hostname), e.g. llm.tail0a1b2c.ts.net.
    tailnet_host: str
    tailnet_ip: str | None = None
    tls: TlsSettings | None = None
    node: NodeSettings = NodeSettings()
    networks: dict[Name, NetworkSettings] = Field(min_length=1)
    services: dict[Name, ServiceSettings] = Field(min_length=1)
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
