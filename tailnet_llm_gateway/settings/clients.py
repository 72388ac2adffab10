"""Settings of the API clients: each one's key, routes, models and limits."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import ModelName, RoutePattern, StrictModel
from .limits import RateLimitSettings

ClientName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=32)]


class ClientSettings(StrictModel):
    """One API client (a laptop, a CI job, a tool): its own key, the API routes and models it may use."""

    # Paths of bearer routes, as written in `routes` (default: every bearer route).
    routes: tuple[RoutePattern, ...] | None = Field(default=None, min_length=1)
    # Model names (default: every model).
    models: tuple[ModelName, ...] | None = Field(default=None, min_length=1)
    # Raise it to rotate a generated key (the next `pulumi up` makes a new one for this client only).
    key_version: int = Field(default=1, ge=1)
    # This client's limits, over `limits.clients` field by field.
    limits: RateLimitSettings | None = None
