"""The edge's routes: which path goes where, under which auth, for which clients; and every check that
two routes resolve in Caddy the way the settings mean."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from policy.gateway_contract import (
    API_AUTH,
    BEARER,
    NONE,
    RoutePath,
    caddy_order,
    overlaps,
    route_conflicts,
)

from ..auth import Access, AuthMode, RouteFacts, mode_of, route_options
from ..errors import SettingsError
from ..settings import Settings
from ..settings.messages import did_you_mean
from .clients import Client
from .edge import READINESS_PATH
from .services import Service, known


@dataclass(frozen=True)
class Route:
    """What every route has; `access` is the part its auth mode decided (its keys, clients, capability)."""

    path: str
    mode: AuthMode
    upstream: Service | None
    respond: str | None
    strip_prefix: bool
    access: Access
    # The upstream is LiteLLM, which gets the edge's own key; any other upstream gets no credential.
    to_gateway: bool = False

    @property
    def auth(self) -> str:
        return self.mode.name

    @property
    def is_api(self) -> bool:
        return self.access.api

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
        upstream = None
        if spec.upstream is not None:
            upstream = known(by_name, spec.upstream, f"routes[{index}].upstream")
            if edge_network not in upstream.networks:
                raise SettingsError(
                    f"routes[{index}].upstream",
                    f"{upstream.name!r} is not on {edge_network!r}, the edge's network; Caddy could not resolve it",
                )
        to_gateway = upstream is not None and upstream.name == gateway.name
        facts = RouteFacts(index, spec, settings, upstream, to_gateway, edge_network, allowed.get(spec.path, ()))
        mode = mode_of(spec.auth)
        access = mode.build(facts, route_options(facts))
        routes.append(Route(spec.path, mode, upstream, spec.respond, spec.strip_prefix, access, to_gateway))
    _one_capability_per_route(routes, settings)
    if not any(r.is_api and r.to_gateway for r in routes):
        raise SettingsError(
            "routes",
            f"no route has auth {' or '.join(repr(a) for a in API_AUTH)} to the gateway, so the stack would offer "
            f"no API; add one, e.g. {{path: /llm/*, upstream: {gateway.name}, stripPrefix: true, auth: bearer}}",
        )
    # In Caddy's own order for handle blocks, so the Caddyfile reads as Caddy runs it.
    order = caddy_order([None if r.is_catch_all else r.path for r in routes])
    return tuple(routes[i] for i in order)


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


def _one_capability_per_route(routes: list[Route], settings: Settings) -> None:
    """Two routes with one capability would be granted together: the policy could not give one without the
    other (the default capability turns `/` into `-`, so /team/admin/* and /team-admin/* meet)."""
    index = {spec.path: i for i, spec in enumerate(settings.routes)}
    seen: dict[str, str] = {}
    for route in sorted(routes, key=lambda r: index[r.path]):
        grant = route.access.grant()
        if grant is None:
            continue
        capability = grant[0]
        if capability in seen:
            raise SettingsError(
                f"routes[{index[route.path]}].capability",
                f"{capability} is already the capability of {seen[capability]}; a grant of one "
                "would open both: give this route a capability of its own",
            )
        seen[capability] = route.path


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
