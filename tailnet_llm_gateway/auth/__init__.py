"""Auth modes: how a route proves who calls it, one module a mode.

- sso: a browser session, checked by the SSO service (sso.py);
- bearer: an API key the edge compares (bearer.py);
- tailnet: the gateway's node says who calls and what the policy grants them (tailnet.py);
- none: open, for fixed answers and the SSO service's own endpoints (none.py);
- api.py: what bearer and tailnet API routes share; mode.py: what a mode is.

Adding a mode: a module here with its `AuthMode` subclass, one line in `MODES` below, and its name and
strength in the contract (policy/gateway_contract/routes.py), which the settings and the pack read. A mode
the contract names and no module registers, or the reverse, fails here at import.
"""

from __future__ import annotations

from typing import Any

from policy.gateway_contract import AUTH_STRENGTH

from ..errors import SettingsError
from .bearer import BearerMode
from .mode import COMMON_KEYS, Access, AuthMode, RouteFacts
from .none import NoneMode
from .sso import SsoMode
from .tailnet import TAILNET_CLIENT_PREFIX, TailnetMode

MODES: dict[str, AuthMode] = {mode.name: mode for mode in (SsoMode(), BearerMode(), TailnetMode(), NoneMode())}

if set(MODES) != set(AUTH_STRENGTH):
    raise ImportError(
        f"auth modes registered {sorted(MODES)} differ from the contract's {sorted(AUTH_STRENGTH)}: "
        "register each mode in tailnet_llm_gateway/auth/__init__.py and name it in policy/gateway_contract/routes.py"
    )


def mode_of(name: str) -> AuthMode:
    return MODES[name]


def _keys(mode: AuthMode) -> set[str]:
    return {field.alias or name for name, field in mode.Options.model_fields.items()}


def route_options(facts: RouteFacts) -> Any:
    """The route's own keys, read by its mode; a key only other modes take is named with those modes."""
    mode = mode_of(facts.spec.auth)
    own = _keys(mode)
    for key in facts.spec.options:
        owners = [m.name for m in MODES.values() if key in _keys(m)]
        if key not in own and owners:
            raise SettingsError(f"{facts.where}", f"{key} applies only to {' and '.join(owners)} routes")
    return mode.options(facts)


__all__ = [
    "COMMON_KEYS",
    "MODES",
    "TAILNET_CLIENT_PREFIX",
    "Access",
    "AuthMode",
    "RouteFacts",
    "mode_of",
    "route_options",
]
