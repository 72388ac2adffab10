"""Zero-loss operations: the soak (tests/engine/soak.py) on the real engine, with its targets.

Steady clients and long streams go through the edge while the operator adds a client, rotates a key, revokes a
client, sets a client's limits, changes a route, changes a model's backends, adds a backend on another tailnet
machine (a real tailscaled, reached through the host's kernel-mode tailscaled: harness/testnet) and changes
a LiteLLM timeout, and while a
backend and dockerd restart. Edge and key operations and (with the default two replicas) gateway changes must
fail no request and cut no stream; a backend restart fails no request when the model has another backend;
after a dockerd restart the API answers again with no manual step; and no stream that was cut ever ends as if
its answer were complete.
"""

from __future__ import annotations

import pytest

from harness.engine.soak import can_restart_dockerd, soak
from harness.engine.traffic import Window, table
from tests.conftest import cannot_run

EDGE_AND_KEY_OPERATIONS = (
    "add a client",
    "rotate a client's key",
    "revoke a client",
    "set a client's limits",
    "change a route",
)
GATEWAY_OPERATIONS = ("change a model's backends", "add a backend on another machine", "change a LiteLLM timeout")


@pytest.fixture(scope="module")
def windows(docker_client, stand_in_images, dev_certs) -> dict[str, Window]:
    if not can_restart_dockerd():
        cannot_run("the soak restarts dockerd, which needs root and a dockerd process on this machine")
    measured = soak(docker_client, dev_certs).windows
    print("\n" + table(measured, "soak: each operation under load (8 clients, 2 streams of 30 s)"))
    return {w.operation: w for w in measured}


@pytest.mark.parametrize("operation", EDGE_AND_KEY_OPERATIONS + GATEWAY_OPERATIONS)
def test_a_change_under_load_fails_no_request_and_cuts_no_stream(windows, operation):
    measured = windows[operation]
    assert measured.requests > 0 and measured.streams > 0, f"{operation}: the soak sent nothing"
    assert measured.failed == 0, f"{operation} failed {measured.failed} requests: {measured.failures}"
    assert measured.cut == 0, f"{operation} cut {measured.cut} of {measured.streams} streams"


def test_a_backend_restart_fails_no_request_when_the_model_has_another_backend(windows):
    measured = windows["restart a backend"]
    assert measured.failed == 0, f"a backend restart failed {measured.failed} requests: {measured.failures}"


def test_after_a_dockerd_restart_the_api_answers_again_with_no_manual_step(windows):
    """The soak also waits (bounded) for every container's healthcheck, and fails without it."""
    measured = windows["restart dockerd"]
    assert measured.api_back_s is not None and measured.api_back_s < 120, (
        f"the API was not back within 120 s of a dockerd restart: {measured.api_back_s}"
    )


def test_no_cut_stream_ever_ends_as_if_its_answer_were_complete(windows):
    clean = {name: w.cut_cleanly for name, w in windows.items() if w.cut_cleanly}
    assert not clean, f"streams cut but ended cleanly (a client would take a partial answer for a whole): {clean}"
