"""The API clients: who may present a key at the edge, which models each may use, and how much."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from policy.gateway_contract import MASTER_CLIENT_NAME, MASTER_KEY_FILE, client_key_file

from ..errors import SettingsError
from ..settings import Settings
from ..settings.limits import RateLimitSettings
from ..settings.messages import did_you_mean


@dataclass(frozen=True)
class RateLimits:
    """How much one caller may ask of LiteLLM in a minute, and at once; None: no limit."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None

    @classmethod
    def of(cls, settings: RateLimitSettings | None, default: RateLimits | None = None) -> RateLimits:
        """`settings` over `default`, field by field."""
        base = default or cls()
        if settings is None:
            return base
        return cls(**{f.name: _first(getattr(settings, f.name), getattr(base, f.name)) for f in fields(cls)})

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))


def _first(value: int | None, default: int | None) -> int | None:
    return value if value is not None else default


@dataclass(frozen=True)
class Client:
    """An API client: its name (in logs and toward LiteLLM), the file in the edge's keys directory that
    holds its key, and the models it may use (None: all)."""

    name: str
    key_file: str
    models: tuple[str, ...] | None
    # Raising it replaces a generated key (rotation); a key set in `clientKeys` is used as it is.
    key_version: int = 1
    limits: RateLimits = field(default_factory=RateLimits)


# Without `clients`, the one client is whoever holds the master key.
MASTER_CLIENT = Client(name=MASTER_CLIENT_NAME, key_file=MASTER_KEY_FILE, models=None)


def build_clients(settings: Settings) -> tuple[Client, ...]:
    default = RateLimits.of(settings.limits.clients)
    if not settings.clients:
        return (MASTER_CLIENT,)
    clients = []
    for name in sorted(settings.clients):
        spec = settings.clients[name]
        for index, model in enumerate(spec.models or ()):
            if model not in settings.models:
                raise SettingsError(
                    f"clients.{name}.models[{index}]",
                    f"{model!r} is not a model in 'models'{did_you_mean(model, settings.models)}",
                )
        clients.append(
            Client(
                name=name,
                key_file=client_key_file(name),
                models=spec.models,
                key_version=spec.key_version,
                limits=RateLimits.of(spec.limits, default),
            )
        )
    return tuple(clients)
