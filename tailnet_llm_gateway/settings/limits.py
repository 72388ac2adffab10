"""Settings of per-caller limits: how much one API client, or one tailnet login, may ask of LiteLLM."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

from .fields import StrictModel

# A whole number as written: YAML's `yes` or "5" is a mistake, not 1 or 5.
Count = Annotated[int, Strict()]


class RateLimitSettings(StrictModel):
    """Limits for one caller; a limit left out is no limit. Counted over a minute (LiteLLM's window)."""

    requests_per_minute: Count | None = Field(default=None, ge=1, le=1_000_000)
    # Input and output tokens together, as the backend reported them.
    tokens_per_minute: Count | None = Field(default=None, ge=1, le=1_000_000_000)
    # Requests (streams included) in flight at once.
    concurrent: Count | None = Field(default=None, ge=1, le=10_000)


class LimitDefaults(StrictModel):
    """What every named client gets unless its own `limits` say otherwise (field by field), and what each
    tailnet login gets on `auth: tailnet` routes."""

    clients: RateLimitSettings = RateLimitSettings()
    tailnet: RateLimitSettings = RateLimitSettings()
