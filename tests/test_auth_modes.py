"""Auth modes are units: the registered modes are exactly the contract's, a mismatch stops the import,
each mode owns its route keys, and a key of another mode is refused naming the modes that take it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.stacks import ROOT, stack_values
from policy.gateway_contract import AUTH_STRENGTH
from tailnet_llm_gateway.auth import MODES, mode_of
from tailnet_llm_gateway.auth.mode import COMMON_KEYS
from tailnet_llm_gateway.errors import SettingsError
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.settings.routes import RouteSettings
from tailnet_llm_gateway.topology import build_topology


def _keys(mode_name: str) -> set[str]:
    options = mode_of(mode_name).Options
    return {field.alias or name for name, field in options.model_fields.items()}


def test_the_registered_modes_are_the_contracts():
    assert set(MODES) == set(AUTH_STRENGTH), "the settings would take a mode no module writes (or the reverse)"


@pytest.mark.parametrize(
    "change",
    [
        "routes.AUTH_STRENGTH['mtls'] = 2",  # the contract names a mode no module registers
        "routes.AUTH_STRENGTH.pop('none')",  # a registered mode the contract does not name
    ],
)
def test_a_mode_the_contract_and_the_registry_disagree_on_stops_the_import(change):
    code = f"import policy.gateway_contract.routes as routes; {change}; import tailnet_llm_gateway.auth"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "ImportError" in result.stderr, (
        "an unregistered auth mode would reach the settings and render as another mode's routes"
    )


def test_no_mode_takes_a_key_every_route_has():
    for name in MODES:
        assert not _keys(name) & set(COMMON_KEYS), f"{name} redefines a key every route has"


def test_route_settings_hold_only_the_keys_every_route_has():
    declared = {field.alias or name for name, field in RouteSettings.model_fields.items()}
    assert declared == set(COMMON_KEYS), f"a mode's key lives outside its mode: {sorted(declared - set(COMMON_KEYS))}"


@pytest.mark.parametrize(
    ("key", "value", "owners"), [("keyHeaders", ["x-api-key"], "bearer"), ("capability", "a.b/cap/x", "tailnet")]
)
def test_a_key_of_another_mode_is_refused_naming_its_modes(key, value, owners):
    values = stack_values("dev-node")
    route = next(r for r in values["routes"] if r["path"] == "/dash/*")
    route[key] = value
    with pytest.raises(SettingsError) as refused:
        build_topology(Settings.from_mapping(values))
    assert f"{key} applies only to {owners} routes" in str(refused.value), "the key would be silently ignored"
