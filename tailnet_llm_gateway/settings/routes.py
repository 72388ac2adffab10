"""Settings of the edge's routes: what every route has. The keys of one auth mode (a bearer route's
keyHeaders, a tailnet route's capability, ...) are its mode's (tailnet_llm_gateway/auth/), which checks them when
the topology is built; here they are kept as written."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, model_validator

from policy.gateway_contract import NONE, Auth

from . import grammar
from .fields import Name, RoutePattern, StrictModel


class RouteSettings(StrictModel):
    # The keys of the route's auth mode pass here and are read by the mode (`options`).
    model_config = ConfigDict(**{**StrictModel.model_config, "extra": "allow"})

    path: RoutePattern
    upstream: Name | None = None
    # A fixed answer (health checks): plain text, answered as written.
    respond: Annotated[str, AfterValidator(grammar.fixed_text)] | None = None
    strip_prefix: bool = False
    auth: Auth

    @model_validator(mode="after")
    def _one_target(self) -> RouteSettings:
        if (self.upstream is None) == (self.respond is None):
            raise ValueError("set exactly one of 'upstream' and 'respond'")
        if self.strip_prefix and not self.path.endswith("/*"):
            raise ValueError("stripPrefix needs a prefix path ending in /*")
        if self.respond is not None and self.auth != NONE:
            raise ValueError("a 'respond' route serves a fixed body; its auth must be 'none'")
        return self

    @property
    def options(self) -> dict[str, Any]:
        """The keys this route has beyond the common ones, as written: its auth mode's."""
        return dict(self.model_extra or {})
