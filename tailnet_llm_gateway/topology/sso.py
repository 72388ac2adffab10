"""Single sign-on: the service the edge asks about a browser's session, and where sign-in starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from policy.gateway_contract import NONE, SSO

from ..errors import SettingsError
from ..settings import Settings
from .routes import Route
from .services import Service


@dataclass(frozen=True)
class Sso:
    service: Service
    auth_path: str
    start_path: str
    copy_headers: tuple[tuple[str, str], ...]


def build_sso(
    settings: Settings, by_name: Mapping[str, Service], routes: tuple[Route, ...], edge_network: str
) -> Sso | None:
    """The SSO service, when the settings name a declared one; checked when any route needs SSO."""
    sso = None
    if settings.sso.service in by_name:
        sso = Sso(
            service=by_name[settings.sso.service],
            auth_path=settings.sso.auth_path,
            start_path=settings.sso.start_path,
            copy_headers=tuple(sorted(settings.sso.copy_headers.items())),
        )
    if any(r.auth == SSO for r in routes):
        _check_sso(settings, routes, sso, edge_network)
    return sso


def _check_sso(settings: Settings, routes: tuple[Route, ...], sso: Sso | None, edge_network: str) -> None:
    if sso is None:
        raise SettingsError("sso.service", f"{settings.sso.service!r} is not a declared service (see 'services')")
    if edge_network not in sso.service.networks:
        raise SettingsError(
            "sso.service", f"{sso.service.name!r} is not on {edge_network!r}; forward_auth could not reach it"
        )
    # The sign-in redirect must land on a route that reaches the SSO service without SSO itself,
    # or every protected page would redirect to another protected page.
    start = sso.start_path
    covering = [
        r
        for r in routes
        if r.auth == NONE
        and r.upstream is not None
        and r.upstream.name == sso.service.name
        and (r.path == start or (r.path.endswith("/*") and start.startswith(r.prefix + "/")))
    ]
    if not covering:
        raise SettingsError(
            "sso.startPath",
            f"no route with auth 'none' sends {start} to {sso.service.name!r}; sign-in would loop",
        )
