"""What every API route has, whichever mode names its caller (bearer: a key; tailnet: the node): the paths
it forwards, the browser origins it answers, and its Caddyfile block around the mode's naming of the caller.

The block: only the forwarded paths (404 otherwise); pages of origins not listed refused (Origin and
Sec-Fetch-Site); CORS preflights answered for listed origins only; a request no caller was named for
refused with the mode's 401; no client credential or LiteLLM control header goes on; the upstream gets
the caller's name and, for LiteLLM, the edge's own key; streams flushed as written.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import field_validator

from policy.gateway_contract import (
    CLIENT_HEADER,
    EDGE_KEY_FILE,
    GATEWAY_API_PATHS,
    LITELLM_KEY_HEADERS,
    NONE,
    RoutePath,
    markers,
    overlaps,
)
from policy.gateway_contract import caddyfile as shapes

from ..errors import SettingsError
from ..render.caddyfile.proxy import load_key, proxy
from ..render.caddyfile.writer import header_any_of, json_error
from ..settings.fields import RoutePattern, StrictModel
from .mode import Access, AuthMode, RouteFacts

if TYPE_CHECKING:
    from ..render.caddyfile.writer import Writer
    from ..topology import Topology
    from ..topology.clients import Client
    from ..topology.routes import Route

CLIENT_VAR = markers.CLIENT_VAR
EDGE_KEY_VAR = markers.EDGE_KEY_VAR
# The calling client's name, as a placeholder.
CLIENT = f"{{vars.{CLIENT_VAR}}}"
# LiteLLM's own CORS answer is `*` for every origin; the edge decides instead.
CORS_RESPONSE_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
)
# LiteLLM reads these from a request to change how it serves it (x-litellm-num-retries, -timeout, -tags,
# -model, -spend-logs-metadata, litellm-trace-id, ...).
LITELLM_CONTROL_HEADERS = ("X-Litellm-*", "Litellm-*")
_ORIGIN = re.compile(r"^https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")


class ApiOptions(StrictModel):
    # The only sub-paths (after the prefix strip) the edge forwards. Required for an upstream other than
    # LiteLLM; for LiteLLM, a subset of the endpoints API clients need (the default).
    allow_paths: tuple[RoutePattern, ...] | None = None
    # Browser origins whose pages may call the API (CORS); none by default.
    cors_origins: tuple[str, ...] = ()

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


@dataclass(frozen=True)
class ApiAccess(Access):
    forwarded_paths: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    api: ClassVar[bool] = True


def forwarded_paths(facts: RouteFacts, options: ApiOptions) -> tuple[str, ...]:
    """What an API route forwards, checked: its allowPaths (only LiteLLM's API for LiteLLM), or for LiteLLM
    the endpoints API clients need, which the route's path must hand on unchanged or strip."""
    spec = facts.spec
    if facts.to_gateway and not spec.strip_prefix:
        served = RoutePath(facts.index, None if spec.path == "/*" else spec.path, spec.auth)
        missed = [p for p in GATEWAY_API_PATHS if served.pattern and not overlaps(served, RoutePath(-1, p, NONE))]
        if missed:
            raise SettingsError(
                f"{facts.where}.stripPrefix",
                f"LiteLLM serves its API at {missed[0]} and the like; {spec.path} would hand it other paths: "
                "set stripPrefix: true",
            )
    for number, path in enumerate(options.allow_paths or ()):
        if facts.to_gateway and path not in GATEWAY_API_PATHS:
            raise SettingsError(
                f"{facts.where}.allowPaths[{number}]",
                f"{path} is not an endpoint API clients may use at LiteLLM; choose from "
                + ", ".join(GATEWAY_API_PATHS),
            )
    if options.allow_paths is not None:
        return options.allow_paths
    return GATEWAY_API_PATHS if facts.to_gateway else ()


class ApiMode(AuthMode):
    """A mode whose routes are an API: the block is shared, the naming of the caller is the mode's."""

    @abstractmethod
    def guard(self) -> str:
        """What guards the route instead of SSO, for its comment."""

    @abstractmethod
    def name_caller(self, w: Writer, route: Route, topology: Topology) -> None:
        """Lines that set `{vars.client}` for a caller the mode can vouch for (nothing otherwise)."""

    @abstractmethod
    def refusal(self, w: Writer, route: Route) -> str:
        """The 401 body for a request whose caller was not named (and any header that goes with it)."""

    def write(self, w: Writer, route: Route, topology: Topology) -> None:
        access = route.access
        assert route.upstream is not None and isinstance(access, ApiAccess)
        name = route.upstream.name
        directive = shapes.route_head(route.path, route.strip_prefix)
        w.line(f"# {route.path} bypasses SSO for API clients; {self.guard()} instead.")
        if route.strip_prefix:
            w.line(f"# handle_path strips {route.prefix}, so {name} sees its own paths.")
        w.open(directive)
        w.open("route")
        w.line(f"import {markers.IDENTITY_SNIPPET}")
        w.line("vars api_route true")
        keys = _route_keys(route)
        if keys:
            w.line("# The keys this route checks and hands on, from the edge's keys directory.")
            for var, file_name in keys.items():
                load_key(w, topology, var, file_name)
            w.line("# Fail closed: without the edge's own key, or without any client's key, the route answers 503.")
            w.line("# One client's empty key (its file being written) keeps only that client out: its matcher")
            w.line("# below needs a key that is not empty.")
            w.line(f"@no_key_configured expression `{_no_key(route)}`")
            w.line("header @no_key_configured Content-Type application/json")
            no_key = json_error("The gateway has no API key configured.", "no_key_configured", 503)
            w.line(f"respond @no_key_configured `{no_key}` 503")
        w.line(f"# Only the paths {name} serves to clients; its docs, admin pages and the rest stay off the tailnet.")
        w.line(shapes.api_paths_guard(access.forwarded_paths))
        w.line(f"header @{markers.NOT_API} Content-Type application/json")
        w.line(shapes.api_paths_refusal(json_error("Not found.", "not_found", 404)))
        _refuse_other_sites(w, access)
        if access.cors_origins:
            _cors_preflight(w, access)
        self.name_caller(w, route, topology)
        w.line(f"log_append {CLIENT_VAR} {CLIENT}")
        w.line(f'@{markers.NO_CLIENT} vars {CLIENT_VAR} ""')
        w.line(f"header @{markers.NO_CLIENT} Content-Type application/json")
        refused = self.refusal(w, route)
        w.line(f"respond @{markers.NO_CLIENT} `{refused}` 401")
        w.line("# No client credential goes further than the edge: none of the headers LiteLLM takes a key from.")
        _remove(w, "request_header", LITELLM_KEY_HEADERS)
        if route.to_gateway:
            w.line(f"# Nor any of {name}'s own control headers (retries, timeouts, tags, routing, spend")
            w.line("# metadata): what a request may ask of it is the stack's to say, not a client's.")
            _remove(w, "request_header", LITELLM_CONTROL_HEADERS)
        if access.cors_origins:
            w.line("# Pages of an allowed origin may read the answers; no other origin may.")
            w.open("@cors_origin")
            header_any_of(w, "Origin", access.cors_origins)
            w.close()
            w.open("header @cors_origin")
            w.line(">Access-Control-Allow-Origin {http.request.header.Origin}")
            w.line(">Vary Origin")
            w.close()
        if route.to_gateway:
            w.line(f"# {name} gets the edge's own key and the client's name; never a client's credential.")
            credential = f'"Bearer {{vars.{EDGE_KEY_VAR}}}"'
        else:
            w.line(f"# {name} gets the client's name and no credential: the edge has checked it.")
            credential = ""
        proxy(w, topology, route.upstream, {"Authorization": credential, CLIENT_HEADER: CLIENT}, caller=CLIENT)
        w.line("# Streams (chat chunks, server-sent events) reach the client as the upstream writes them.")
        w.line("flush_interval -1")
        _remove(w, "header_down", CORS_RESPONSE_HEADERS)
        if route.to_gateway:
            w.line(f"# {name} answers 500 when a backend fails: to a client that is a bad gateway (its JSON says why).")
            w.line("@backend_failed status 500")
            w.open("handle_response @backend_failed")
            w.line("copy_response 502")
            w.close()
        w.close()
        w.close()
        w.close()


def _remove(w: Writer, directive: str, headers: tuple[str, ...]) -> None:
    """One `<directive> -<header>` line a header: the request to the upstream, or the answer, goes without it."""
    for header in headers:
        w.line(f"{directive} -{header}")


def _refuse_other_sites(w: Writer, access: ApiAccess) -> None:
    """Browsers send Origin (and Sec-Fetch-Site): a page of another site gets nothing done here, whatever
    the method, since a tailnet caller's identity or a cookie would go with its requests."""
    w.line("# A browser request from a page whose origin is not listed is refused, whatever its method.")
    w.open("@other_origin")
    w.line("header Origin *")
    _not_allowed_origin(w, access)
    w.close()
    w.open("@other_site")
    header_any_of(w, "Sec-Fetch-Site", ("cross-site", "same-site"))
    _not_allowed_origin(w, access)
    w.close()
    refused = json_error("Cross-site request refused: the page's origin is not in corsOrigins.", "cross_site", 403)
    for matcher in ("other_origin", "other_site"):
        w.line(f"header @{matcher} Content-Type application/json")
        w.line(f"respond @{matcher} `{refused}` 403")


def _not_allowed_origin(w: Writer, access: ApiAccess) -> None:
    if access.cors_origins:
        w.open("not")
        header_any_of(w, "Origin", access.cors_origins)
        w.close()


def _cors_preflight(w: Writer, access: ApiAccess) -> None:
    w.line("# A browser's CORS preflight from an allowed origin, answered here: it carries no key by design.")
    w.open("@preflight")
    w.line("method OPTIONS")
    header_any_of(w, "Origin", access.cors_origins)
    w.line("header Access-Control-Request-Method *")
    w.close()
    w.open("header @preflight")
    w.line("Access-Control-Allow-Origin {http.request.header.Origin}")
    w.line('Access-Control-Allow-Methods "GET, POST, OPTIONS"')
    w.line("Access-Control-Allow-Headers {http.request.header.Access-Control-Request-Headers}")
    w.line("Access-Control-Max-Age 600")
    w.line("Vary Origin")
    w.close()
    w.line("respond @preflight 204")


def key_var(client: Client) -> str:
    """The request variable a client's key is read into."""
    return markers.KEY_VAR_PREFIX + client.key_file.replace("-", "_")


def _no_key(route: Route) -> str:
    """CEL: the edge's own key is empty (an API route to LiteLLM), or every client's key is."""
    empty = []
    if route.to_gateway:
        empty.append(f"{{vars.{EDGE_KEY_VAR}}} == ''")
    clients = route.access.clients()
    if clients:
        empty.append("(" + " && ".join(f"{{vars.{key_var(client)}}} == ''" for client in clients) + ")")
    return " || ".join(empty)


def _route_keys(route: Route) -> dict[str, str]:
    """The keys a route reads (variable -> file): each of its clients', and the edge's own toward LiteLLM."""
    keys = {key_var(client): client.key_file for client in route.access.clients()}
    if route.to_gateway:
        keys[EDGE_KEY_VAR] = EDGE_KEY_FILE
    return keys
