"""The only places the tests reach past the public Pulumi and Pulumi Policy APIs, and why.

The tests otherwise use what Pulumi documents for unit tests: `pulumi.runtime.set_mocks`, `Mocks`,
`pulumi.runtime.test`, stack transformations and the PULUMI_CONFIG environment variable.

- `fresh_root_stack`: `set_mocks` creates a root stack only when none exists, so a second program run
  in the same process would register under the first run's stack, with its transformations and
  outputs. One run per stack file needs a fresh root; the SDK has no public call for that.
- `unwrap_secret`: a mock receives secret inputs wrapped in the engine's secret signature; the SDK's
  rpc helpers (pulumi.runtime.rpc) are the reader for that wire format.
- `engine_view`: CrossGuard policies see resources through the policy SDK's deserializer and its
  unknown-value proxy; there is no official Python harness (pulumi-policy#445), so the tests build what
  the analyzer hands the policies from these two pieces, rather than a hand-written imitation;
  `unknown_value` is the SDK's stand-in for a value a preview does not know yet.
"""

from __future__ import annotations

from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

__all__ = ["UnknownValueError", "engine_view", "fresh_root_stack", "unknown_value", "unwrap_secret"]


def unknown_value() -> Unknown:
    """A value not known until the resource exists, as it stands in inputs during a preview."""
    return Unknown()


def fresh_root_stack() -> None:
    runtime_settings.ROOT.set(None)


def unwrap_secret(value: Any) -> tuple[Any, bool]:
    """An input value as a mock receives it, and whether it arrived as a secret."""
    if rpc.is_rpc_secret(value):
        return rpc.unwrap_rpc_secret(value), True
    return value, False


def _as_engine_sends(value: Any) -> Any:
    """Unknown values as the engine sends them to analyzers (its sentinel string)."""
    if isinstance(value, Unknown):
        return rpc.UNKNOWN
    if isinstance(value, dict):
        return {k: _as_engine_sends(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_engine_sends(v) for v in value]
    return value


def engine_view(inputs: dict[str, Any]) -> Any:
    """Registered inputs as a policy sees them: deserialized (secrets in plain) behind the unknown proxy."""
    return unknown_checking_proxy(deserialize_properties(_as_engine_sends(inputs)))
