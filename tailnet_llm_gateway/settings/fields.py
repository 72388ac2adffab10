"""The building blocks of the settings model: the base model and the field types every part uses."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)
from pydantic.alias_generators import to_camel

from ..images import parse_image
from . import grammar

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


# Headers the edge, the browser or the proxy itself rely on: an identity copied into one of them (an SSO
# answer, a tailnet login) would be stripped from every client request (so no key would reach the edge) or
# would confuse the proxy.
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


def _identity_header(target: str) -> str:
    """An identity goes into a header of its own, never one the edge, browsers or proxies rely on."""
    if target.lower() in _RESERVED_HEADERS or target.lower().startswith(_RESERVED_PREFIXES):
        raise ValueError(f"{target!r} is a header the edge or browsers rely on; use X-Forwarded-User etc.")
    return target


# A header the edge tells an upstream who is calling in.
IdentityHeader = Annotated[str, AfterValidator(grammar.header_name), AfterValidator(_identity_header)]


class StrictModel(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


def audience(value: str) -> str:
    # Who may reach the gateway: never everyone. `*` and autogroup:danger-all include outsiders.
    if value in ("*", "autogroup:danger-all") or value.startswith("autogroup:") and value != "autogroup:member":
        raise ValueError(f"{value!r} is too broad; name groups, users or tags (or autogroup:member)")
    return grammar.principal(value)
