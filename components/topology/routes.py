"""The edge's routes: which path goes where, under which auth, for which clients; and every check that
two routes resolve in Caddy the way the settings mean."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from policy.gateway_contract import (
    API_AUTH,
    BEARER,
    CLIENT_HEADER,
    GATEWAY_API_PATHS,
    NONE,
    TAILNET,
    TAILNET_NODE,
    Auth,
    RoutePath,
    caddy_order,
    overlaps,
    route_conflicts,
)

from ..errors import SettingsError
from ..settings import Settings
from ..settings.messages import did_you_mean
from ..settings.routes import RouteSettings
from .clients import Client
from .edge import READINESS_PATH
from .services import Service, known

# What a tailnet browser route hands its app unless it says otherwise: the caller's login, in the header
# trusted-header sign-in most often reads (Open WebUI's WEBUI_AUTH_TRUSTED_EMAIL_HEADER, oauth2-proxy's).
DEFAULT_IDENTITY_HEADERS = {"email": "X-Forwarded-Email"}


@dataclass(frozen=True)
class Route:
    path: str
    auth: Auth
    upstream: Service | None
    respond: str | None
    strip_prefix: bool
    forwarded_paths: tuple[str, ...]
    # Bearer routes: where a client may put its key, and which clients may use it.
    key_headers: tuple[str, ...] = ()
    clients: tuple[Client, ...] = ()
    # API routes: which browser origins may call them.
    cors_origins: tuple[str, ...] = ()
    # Tailnet routes: the application capability their callers need, and who the policy grants it.
    capability: str | None = None
    audiences: tuple[str, ...] = ()
    # Whether the upstream is LiteLLM, which gets the master key; any other upstream gets no credential.
    to_gateway: bool = False
    # Tailnet browser routes (a web app, every path): which header gets which part of the caller's identity
    # (login, email, name), in this order.
    identity_headers: tuple[tuple[str, str], ...] = ()
    # Tailnet browser routes: whether pages of other sites may send it state-changing requests (the settings
    # say why); refused otherwise.
    cross_site_writes: bool = False

    @property
    def browser(self) -> bool:
        """A tailnet route to a web app (not LiteLLM, no allowPaths): pages for people, by tailnet identity."""
        return self.auth == TAILNET and not self.to_gateway and not self.forwarded_paths

    @property
    def is_api(self) -> bool:
        return self.auth in API_AUTH and not self.browser

    @property
    def is_catch_all(self) -> bool:
        return self.path == "/*"

    @property
    def prefix(self) -> str:
        """The path without its trailing `/*` (what handle_path strips)."""
        return self.path[:-2] if self.path.endswith("/*") else self.path


def build_routes(
    settings: Settings,
    by_name: Mapping[str, Service],
    gateway: Service,
    edge_network: str,
    clients: tuple[Client, ...],
) -> tuple[Route, ...]:
    _check_route_paths(settings)
    allowed = _clients_by_route(settings, clients)
    routes = []
    for index, spec in enumerate(settings.routes):
        where = f"routes[{index}]"
        upstream = None
        if spec.upstream is not None:
            upstream = known(by_name, spec.upstream, f"{where}.upstream")
            if edge_network not in upstream.networks:
                raise SettingsError(
                    f"{where}.upstream",
                    f"{upstream.name!r} is not on {edge_network!r}, the edge's network; Caddy could not resolve it",
                )
        to_gateway = upstream is not None and upstream.name == gateway.name
        if spec.auth == BEARER and not to_gateway and spec.allow_paths is None:
            raise SettingsError(
                f"{where}.allowPaths",
                f"an API route to {spec.upstream!r} must list the paths it forwards (the default is LiteLLM's API)",
            )
        browser = spec.auth == TAILNET and not to_gateway and spec.allow_paths is None
        if spec.identity_headers is not None and not browser:
            raise SettingsError(
                f"{where}.identityHeaders",
                "applies only to a tailnet route to a web app (not LiteLLM, no allowPaths): an API route names its "
                f"caller in {CLIENT_HEADER}",
            )
        if spec.allow_cross_site is not None and not browser:
            raise SettingsError(
                f"{where}.allowCrossSite",
                "applies only to a tailnet route to a web app (not LiteLLM, no allowPaths): API routes refuse other "
                "sites' pages unless corsOrigins lists them",
            )
        if spec.auth in API_AUTH and to_gateway and not spec.strip_prefix:
            served = RoutePath(index, None if spec.path == "/*" else spec.path, spec.auth)
            missed = [p for p in GATEWAY_API_PATHS if served.pattern and not overlaps(served, RoutePath(-1, p, NONE))]
            if missed:
                raise SettingsError(
                    f"{where}.stripPrefix",
                    f"LiteLLM serves its API at {missed[0]} and the like; {spec.path} would hand it other paths: "
                    "set stripPrefix: true",
                )
        for number, path in enumerate(spec.allow_paths or ()):
            if to_gateway and path not in GATEWAY_API_PATHS:
                raise SettingsError(
                    f"{where}.allowPaths[{number}]",
                    f"{path} is not an endpoint API clients may use at LiteLLM; choose from "
                    + ", ".join(GATEWAY_API_PATHS),
                )
        if spec.auth == BEARER and not allowed.get(spec.path):
            raise SettingsError(where, f"no client in 'clients' may use {spec.path}; list it in a client's routes")
        if spec.auth == TAILNET and settings.exposure != TAILNET_NODE:
            raise SettingsError(
                f"{where}.auth",
                "'tailnet' needs exposure tailnet-node: only the gateway's own node can vouch for a caller, "
                "and in host-bind mode nothing trustworthy sets its headers (use 'sso' for pages, 'bearer' for APIs)",
            )
        if spec.auth == TAILNET and settings.networks[edge_network].subnet is None:
            raise SettingsError(
                f"networks.{edge_network}.subnet",
                f"routes[{index}] uses auth 'tailnet', so the edge must know the node's address: pin a subnet",
            )
        if spec.auth == NONE and upstream is not None and upstream.name != settings.sso.service:
            raise SettingsError(
                f"{where}.auth",
                f"'none' is only for health and SSO endpoints; {upstream.name!r} would be reachable without SSO",
            )
        routes.append(
            Route(
                path=spec.path,
                auth=spec.auth,
                upstream=upstream,
                respond=spec.respond,
                strip_prefix=spec.strip_prefix,
                forwarded_paths=_forwarded_paths(spec, to_gateway),
                key_headers=spec.accepted_key_headers,
                clients=allowed.get(spec.path, ()) if spec.auth == BEARER else (),
                cors_origins=spec.cors_origins,
                capability=_capability(settings, spec) if spec.auth == TAILNET else None,
                audiences=(spec.audiences or settings.tailnet_policy.audiences) if spec.auth == TAILNET else (),
                to_gateway=to_gateway,
                identity_headers=tuple((spec.identity_headers or DEFAULT_IDENTITY_HEADERS).items()) if browser else (),
                cross_site_writes=spec.allow_cross_site is not None,
            )
        )
    _one_capability_per_route(routes, settings)
    if not any(r.is_api and r.to_gateway for r in routes):
        raise SettingsError(
            "routes",
            "no route has auth 'bearer' (or 'tailnet') to the gateway, so the stack would offer no API; add one, "
            f"e.g. {{path: /llm/*, upstream: {gateway.name}, stripPrefix: true, auth: bearer}}",
        )
    # In Caddy's own order for handle blocks, so the Caddyfile reads as Caddy runs it.
    order = caddy_order([None if r.is_catch_all else r.path for r in routes])
    return tuple(routes[i] for i in order)


def _forwarded_paths(spec: RouteSettings, to_gateway: bool) -> tuple[str, ...]:
    """What an API route forwards: its allowPaths, or for LiteLLM the endpoints API clients need."""
    if spec.auth not in API_AUTH:
        return ()
    if spec.allow_paths is not None:
        return spec.allow_paths
    return GATEWAY_API_PATHS if to_gateway else ()


def _clients_by_route(settings: Settings, clients: tuple[Client, ...]) -> dict[str, tuple[Client, ...]]:
    """The clients that may use each bearer route (by path); every client names only bearer routes."""
    bearer = [r.path for r in settings.routes if r.auth == BEARER]
    allowed: dict[str, list[Client]] = {path: [] for path in bearer}
    for client in clients:
        spec = settings.clients.get(client.name)
        paths = spec.routes if spec is not None and spec.routes is not None else tuple(bearer)
        for index, path in enumerate(paths):
            if path not in allowed:
                raise SettingsError(
                    f"clients.{client.name}.routes[{index}]",
                    f"{path!r} is not the path of a bearer route{did_you_mean(path, bearer)}",
                )
            allowed[path].append(client)
    return {path: tuple(found) for path, found in allowed.items()}


def _capability(settings: Settings, spec: RouteSettings) -> str:
    if spec.capability is not None:
        return spec.capability
    slug = spec.path.strip("/*").replace("/", "-") or "root"
    return f"{settings.tailnet_host}/cap/{slug}"


def _one_capability_per_route(routes: list[Route], settings: Settings) -> None:
    """Two routes with one capability would be granted together: the policy could not give one without the
    other (the default capability turns `/` into `-`, so /team/admin/* and /team-admin/* meet)."""
    index = {spec.path: i for i, spec in enumerate(settings.routes)}
    seen: dict[str, str] = {}
    for route in sorted(routes, key=lambda r: index[r.path]):
        if route.capability is None:
            continue
        if route.capability in seen:
            raise SettingsError(
                f"routes[{index[route.path]}].capability",
                f"{route.capability} is already the capability of {seen[route.capability]}; a grant of one "
                "would open both: give this route a capability of its own",
            )
        seen[route.capability] = route.path


def _check_route_paths(settings: Settings) -> None:
    """Two routes that can match one request must be resolved by Caddy the way the settings mean."""
    paths = [RoutePath(i, None if r.path == "/*" else r.path, r.auth) for i, r in enumerate(settings.routes)]
    reserved = (RoutePath(-1, READINESS_PATH, NONE), RoutePath(-1, READINESS_PATH + "/*", NONE))
    for path in paths:
        if path.pattern is not None and any(overlaps(path, r) for r in reserved):
            raise SettingsError(
                f"routes[{path.index}].path", f"{path.pattern} meets {READINESS_PATH}, the edge's readiness report"
            )
    catch_alls = [p.index for p in paths if p.pattern is None]
    if len(catch_alls) > 1:
        raise SettingsError(f"routes[{catch_alls[1]}].path", f"/* is already the catch-all of routes[{catch_alls[0]}]")
    for route, problem in route_conflicts(paths):
        raise SettingsError(f"routes[{route.index}].path", problem)
