"""Auth `bearer`: an API route whose callers present a key; the edge compares it with each allowed
client's key (files in its keys directory) and names the client whose key it is. LiteLLM learns the
client's name (X-Gateway-Client), never its key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from policy.gateway_contract import BEARER, markers
from policy.gateway_contract import caddyfile as shapes

from ..errors import SettingsError
from ..render.caddyfile.writer import json_error
from .api import ApiAccess, ApiMode, ApiOptions, forwarded_paths, key_var
from .mode import RouteFacts

if TYPE_CHECKING:
    from ..render.caddyfile.writer import Writer
    from ..topology import Topology
    from ..topology.clients import Client
    from ..topology.routes import Route

# How an API client may present its key: `Authorization: Bearer` (OpenAI's SDKs), `x-api-key` (Anthropic's),
# `api-key` (Azure's).
KeyHeader = Literal["authorization", "x-api-key", "api-key"]
ALL_KEY_HEADERS: tuple[KeyHeader, ...] = ("authorization", "x-api-key", "api-key")
# Where each accepted key header's value is read from (the Authorization value without its scheme).
_KEY_SOURCES = {
    "authorization": "{bearer_key}",
    "x-api-key": "{http.request.header.X-Api-Key}",
    "api-key": "{http.request.header.Api-Key}",
}


class BearerOptions(ApiOptions):
    # The headers a client may put its key in (default: all three).
    key_headers: tuple[KeyHeader, ...] | None = Field(default=None, min_length=1)


@dataclass(frozen=True)
class BearerAccess(ApiAccess):
    key_headers: tuple[KeyHeader, ...] = ALL_KEY_HEADERS
    allowed: tuple[Client, ...] = ()

    def clients(self) -> tuple[Client, ...]:
        return self.allowed


class BearerMode(ApiMode):
    name = BEARER
    Options = BearerOptions

    def build(self, facts: RouteFacts, options: Any) -> BearerAccess:
        assert isinstance(options, BearerOptions)
        if not facts.to_gateway and options.allow_paths is None:
            raise SettingsError(
                f"{facts.where}.allowPaths",
                f"an API route to {facts.spec.upstream!r} must list the paths it forwards (the default is "
                "LiteLLM's API)",
            )
        if not facts.clients:
            raise SettingsError(
                facts.where, f"no client in 'clients' may use {facts.spec.path}; list it in a client's routes"
            )
        return BearerAccess(
            forwarded_paths=forwarded_paths(facts, options),
            cors_origins=options.cors_origins,
            key_headers=options.key_headers or ALL_KEY_HEADERS,
            allowed=facts.clients,
        )

    def guard(self) -> str:
        return "their keys guard it"

    def name_caller(self, w: Writer, route: Route, topology: Topology) -> None:
        access = route.access
        assert isinstance(access, BearerAccess)
        w.line("# The client's key, from whichever header it came in (the Authorization scheme in any case).")
        w.open("map {http.request.header.Authorization} {bearer_key}")
        w.line('`~(?i)^bearer\\s+(.+)$` "${1}"')
        w.line('default ""')
        w.close()
        w.line("# Whose key it is: each client allowed here has its own, compared as exact text.")
        for client in access.allowed:
            matcher = markers.CLIENT_MATCHER_PREFIX + client.name.replace("-", "_")
            key = shapes.key_placeholder(key_var(client))
            w.line(shapes.key_matcher(matcher, _key_expression(access, key)))
            w.line(shapes.name_client(matcher, client.name))

    def refusal(self, w: Writer, route: Route) -> str:
        w.line(f'header @{markers.NO_CLIENT} WWW-Authenticate "Bearer"')
        return json_error("Authentication Error, missing or invalid API key.", "auth_error", 401)


def _key_expression(access: BearerAccess, key: str) -> str:
    """CEL: the request presents `key` (an env placeholder) in every accepted header it fills, and fills one.

    Placeholders in an expression are read as strings at run time, so the key is compared as exact
    text, whatever characters it holds; two different keys in two headers match no key.
    """
    sources = [_KEY_SOURCES[name] for name in access.key_headers]
    each = " && ".join(f"({source} == '' || {source} == {key})" for source in sources)
    return f"{key} != '' && {each} && ({' + '.join(sources)}) != ''"
