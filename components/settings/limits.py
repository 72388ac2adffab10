"""Settings of per-caller limits: how much one API client, or one tailnet login, may ask of LiteLLM."""

from __future__ import annotations

from pydantic import Field

from .fields import StrictModel


class RateLimitSettings(StrictModel):
    """Limits for one caller; a limit left out is no limit. Counted over a minute (LiteLLM's window)."""

    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    # Input and output tokens together, as the backend reported them.
    tokens_per_minute: int | None = Field(default=None, ge=1, le=1_000_000_000)
    # Requests (streams included) in flight at once.
    concurrent: int | None = Field(default=None, ge=1, le=10_000)


class LimitDefaults(StrictModel):
    """What every named client gets unless its own `limits` say otherwise (field by field), and what each
    tailnet login gets on `auth: tailnet` routes."""

    clients: RateLimitSettings = RateLimitSettings()
    tailnet: RateLimitSettings = RateLimitSettings()
