"""Each route's block, as its auth mode writes it (tailnet_llm_gateway/auth/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...topology import Topology
    from ...topology.routes import Route
    from .writer import Writer


def route(w: Writer, route: Route, topology: Topology) -> None:
    route.mode.write(w, route, topology)
