"""Settings of the edge's routes, the API clients and SSO."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from policy.gateway_contract import API_AUTH, BEARER, NONE, TAILNET, Auth

from . import grammar
from .fields import ExactPath, HeaderName, ModelName, Name, RoutePattern, StrictModel, audience
from .limits import RateLimitSettings

# What of a tailnet caller's identity a browser route hands its upstream: the login (Tailscale-User-Login,
# usually an e-mail address, hence `email` too) and the display name (Tailscale-User-Name).
IdentityField = Literal["login", "email", "name"]

# How an API client may present its key: `Authorization: Bearer` (OpenAI's SDKs), `x-api-key` (Anthropic's),
# `api-key` (Azure's).
KeyHeader = Literal["authorization", "x-api-key", "api-key"]
_ORIGIN = re.compile(r"^https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
# An application capability is named after a domain its owner controls (Tailscale's convention).
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_CAPABILITY = re.compile(rf"^{_LABEL}(\.{_LABEL})+/[A-Za-z0-9][A-Za-z0-9/_.-]*$")


class RouteSettings(StrictModel):
    path: RoutePattern
    upstream: Name | None = None
    # A fixed answer (health checks): plain text, answered as written.
    respond: Annotated[str, AfterValidator(grammar.fixed_text)] | None = None
    strip_prefix: bool = False
    auth: Auth
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
    audiences: tuple[Annotated[str, AfterValidator(audience)], ...] | None = Field(default=None, min_length=1)
    # For tailnet browser routes (to a web app, without allowPaths): the header the app trusts for each part
    # of the caller's identity (default: {email: X-Forwarded-Email}).
    identity_headers: dict[IdentityField, HeaderName] | None = Field(default=None, min_length=1)
    # For tailnet browser routes: let pages of other sites send state-changing requests (POST, PUT, PATCH,
    # DELETE) to the app; refused by default, since tailnet identity rides on every request a browser makes.
    # The value is the reason, kept in the settings for whoever reads them next.
    allow_cross_site: Annotated[str, Field(min_length=8), AfterValidator(grammar.fixed_text)] | None = None

    @field_validator("identity_headers")
    @classmethod
    def _identity_targets(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            for target in value.values():
                _not_reserved(target)
            twice = sorted({t for t in value.values() if [v.lower() for v in value.values()].count(t.lower()) > 1})
            if twice:
                raise ValueError(f"{twice[0]!r} would carry two parts of the identity; give each its own header")
        return value

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
        if self.respond is not None and self.auth != NONE:
            raise ValueError("a 'respond' route serves a fixed body; its auth must be 'none'")
        for name, value, modes in (
            ("allowPaths", self.allow_paths, API_AUTH),
            ("corsOrigins", self.cors_origins or None, API_AUTH),
            ("keyHeaders", self.key_headers, (BEARER,)),
            ("capability", self.capability, (TAILNET,)),
            ("audiences", self.audiences, (TAILNET,)),
            ("identityHeaders", self.identity_headers, (TAILNET,)),
            ("allowCrossSite", self.allow_cross_site, (TAILNET,)),
        ):
            if value is not None and self.auth not in modes:
                raise ValueError(f"{name} applies only to {' and '.join(modes)} routes")
        return self

    @property
    def accepted_key_headers(self) -> tuple[KeyHeader, ...]:
        if self.auth != BEARER:
            return ()
        return self.key_headers if self.key_headers is not None else ("authorization", "x-api-key", "api-key")


ClientName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=32)]


class ClientSettings(StrictModel):
    """One API client (a laptop, a CI job, a tool): its own key, the API routes and models it may use."""

    # Paths of bearer routes, as written in `routes` (default: every bearer route).
    routes: tuple[RoutePattern, ...] | None = Field(default=None, min_length=1)
    # Model names (default: every model).
    models: tuple[ModelName, ...] | None = Field(default=None, min_length=1)
    # Raise it to rotate a generated key (the next `pulumi up` makes a new one for this client only).
    key_version: int = Field(default=1, ge=1)
    # This client's limits, over `limits.clients` field by field.
    limits: RateLimitSettings | None = None


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


class SsoSettings(StrictModel):
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
            _not_reserved(target)
        return value


def _not_reserved(target: str) -> None:
    """An identity goes into a header of its own, never one the edge, browsers or proxies rely on."""
    if target.lower() in _RESERVED_HEADERS or target.lower().startswith(_RESERVED_PREFIXES):
        raise ValueError(f"{target!r} is a header the edge or browsers rely on; use X-Forwarded-User etc.")
