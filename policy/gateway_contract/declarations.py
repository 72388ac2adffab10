"""What the program declares to the pack: the settings' intent, carried as the GatewayStack component's
outputs. The pack sees resources, never settings, so this is how it compares what was asked for with
what is deployed."""

from __future__ import annotations

from typing import TypedDict


class RouteDeclaration(TypedDict):
    path: str
    auth: str
    upstream: str | None
    # Bearer routes: the clients whose keys the edge accepts there.
    clients: list[str]
    # An API route (keys or tailnet callers to an API); false for browser routes (SSO, tailnet pages).
    api: bool
    # Tailnet routes: the capability a caller's grant must carry, and who the policy grants it.
    capability: str | None
    audiences: list[str]


class ReadinessDeclaration(TypedDict):
    """The edge's own key-less, SSO-less readiness report, which may ask only `upstream` (LiteLLM)."""

    path: str
    upstream: str


class TailnetDeclaration(TypedDict):
    tag: str
    # What grants name as the gateway: its tag, or a hosts alias for a host that carries no tag.
    target: str
    # Who may reach the gateway: the stack's audiences and those of its tailnet routes.
    audiences: list[str]


class Declarations(TypedDict):
    routes: list[RouteDeclaration]
    readiness: ReadinessDeclaration
    # Each service and the networks it is on.
    services: dict[str, list[str]]
    edgeNetwork: str
    tailnet: TailnetDeclaration
    exposure: str
    authKeyReusable: bool
    # Other tailnet machines the edge forwards to for LiteLLM: policy alias -> tailnet address.
    machines: dict[str, str]
