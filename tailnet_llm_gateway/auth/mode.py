"""What an auth mode is: the route keys it owns, the checks and fields it adds to a route, the Caddyfile
block it writes, what the policy pack is told (read from its `Access`), and who LiteLLM is told is calling.

Every mode is a subclass of `AuthMode` in a module of its own, registered in `tailnet_llm_gateway/auth/__init__.py`.
The topology hands a mode the facts every route has (`RouteFacts`); the mode returns its `Access`, the
part of the route only it reads, and writes the route's block from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from policy.gateway_contract import AUTH_STRENGTH, Auth, RouteDeclaration

from ..errors import SettingsError
from ..settings.fields import StrictModel
from ..settings.messages import describe

if TYPE_CHECKING:
    from ..render.caddyfile.writer import Writer
    from ..settings import Settings
    from ..settings.routes import RouteSettings
    from ..topology import Topology
    from ..topology.clients import Client
    from ..topology.routes import Route
    from ..topology.services import Service


class NoOptions(StrictModel):
    """A mode whose routes take no keys of their own."""


@dataclass(frozen=True)
class RouteFacts:
    """What the topology knows of one route before its mode adds its part."""

    index: int
    spec: RouteSettings
    settings: Settings
    upstream: Service | None
    # The upstream is LiteLLM.
    to_gateway: bool
    edge_network: str
    # The API clients whose routes list this one (every named client, or the master-key client).
    clients: tuple[Client, ...] = field(default=())

    @property
    def where(self) -> str:
        return f"routes[{self.index}]"


@dataclass(frozen=True)
class Access:
    """The part of a route its mode decided. The base is a route with nothing of its own (SSO, none)."""

    # An API route: it skips SSO and names its caller to the upstream.
    api: ClassVar[bool] = False

    def clients(self) -> tuple[Client, ...]:
        """The API clients whose keys the route accepts."""
        return ()

    def grant(self) -> tuple[str, tuple[str, ...]] | None:
        """The application capability the tailnet policy grants the route's callers, and to whom."""
        return None

    def told_headers(self) -> tuple[str, ...]:
        """Headers the edge tells the upstream who is calling in (no client may set them)."""
        return ()


class AuthMode(ABC):
    """One way a route proves who calls it."""

    name: ClassVar[Auth]
    # The route keys only this mode's routes take, as a strict settings model.
    Options: ClassVar[type[StrictModel]] = NoOptions

    @property
    def strength(self) -> int:
        """How much it protects (the contract's table): a route may carve requests out of another only with
        a mode at least as strong."""
        return AUTH_STRENGTH[self.name]

    def options(self, facts: RouteFacts) -> StrictModel:
        """The route's own keys, checked against this mode's model; one line naming the key otherwise."""
        try:
            return self.Options.model_validate(facts.spec.options)
        except ValidationError as error:
            problem = describe(error, self.Options, extra_keys=COMMON_KEYS)
            raise SettingsError(f"{facts.where}.{problem.setting}", problem.problem) from None

    @abstractmethod
    def build(self, facts: RouteFacts, options: Any) -> Access:
        """This mode's part of the route, after its checks (SettingsError naming the setting)."""

    @abstractmethod
    def write(self, w: Writer, route: Route, topology: Topology) -> None:
        """The route's block in the edge's site (a `handle` or `handle_path`)."""

    def declaration(self, route: Route) -> RouteDeclaration:
        """What the policy pack is told of the route: what its mode decided, read from its `Access`."""
        capability, audiences = route.access.grant() or (None, ())
        return {
            "path": route.path,
            "auth": self.name,
            "upstream": route.upstream.name if route.upstream else None,
            "clients": [c.name for c in route.access.clients()],
            "api": route.access.api,
            "capability": capability,
            "audiences": list(audiences),
        }


# The keys every route has (settings.routes.RouteSettings), as written.
COMMON_KEYS = ("path", "upstream", "respond", "stripPrefix", "auth")
