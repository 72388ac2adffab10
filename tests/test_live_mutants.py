"""Tests of the live tests, and edges started for one probe: an edge broken on purpose must make the live
probes fail (if one of these passes with the probes saying "fine", the live suite has stopped guarding that
property); an edge with an unusual key must still compare it exactly.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import httpx
import pytest

from harness.ports import free_port
from harness.processes import render, start_caddy
from harness.stacks import ROOT, stack_values, write_stack
from policy.gateway_contract import markers
from tests.edge_probes import assert_identity_not_spoofable, refused_by_allow_list


@pytest.fixture
def mutant_edge(local_edge, tmp_path):
    """Start a Caddy for a mutated stack (settings or rendered text) on the local edge's upstreams."""
    started = []

    def start(values: dict | None = None, edit=None, key: str | None = None, upstreams: dict | None = None) -> str:
        project = tmp_path / f"project{len(started)}"
        project.mkdir()
        shutil.copy(ROOT / "Pulumi.yaml", project)
        shutil.copytree(ROOT / "tailnet", project / "tailnet")
        write_stack(project, "mutant", values or stack_values("dev"))
        port = free_port()
        out = render("mutant", project / "out", project, {**local_edge.upstream_ports, **(upstreams or {})}, port)
        caddyfile = out / "Caddyfile"
        if edit is not None:
            caddyfile.write_text(edit(caddyfile.read_text()))
        started.append(
            start_caddy(caddyfile, port, local_edge.log_dir, key or local_edge.key, name=f"mutant{len(started)}")
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        proc.stop()


def test_llm_behind_sso_fails_the_smoke_check(mutant_edge, local_edge):
    # Settings can no longer express a stack without an API route, so the Caddyfile is broken by hand.
    api_block = f"handle_path /llm/* {{\n\t\troute {{\n\t\t\timport {markers.IDENTITY_SNIPPET}\n"
    base = mutant_edge(edit=lambda text: text.replace(api_block, api_block + f"\t\t\timport {markers.SSO_SNIPPET}\n"))
    assert httpx.get(f"{base}/llm/v1/models", timeout=30).status_code == 302, "the mutant is not the intended break"
    result = subprocess.run(
        [sys.executable, "-m", "tailnet_llm_gateway", "smoke", "--base-url", f"{base}/llm/v1", "--key", local_edge.key],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 1 and "FAIL no key gets 401" in result.stdout, result.stdout


# What the identity probe says when a forged header got through (tests/edge_probes.py).
SPOOFED = "from the client reached|a client could set"


def test_dropping_the_identity_strip_fails_the_identity_probe(mutant_edge, local_edge):
    base = mutant_edge(edit=lambda text: text.replace(f"import {markers.IDENTITY_SNIPPET}\n", ""))
    # The probe must fail for the reason the mutant introduced (a forged header gets through), not because
    # the mutant broke the route: its first check, that the route answers, has to pass.
    with pytest.raises(AssertionError, match=SPOOFED):
        assert_identity_not_spoofable(base, local_edge.key)


def test_a_mutant_that_only_breaks_the_protected_route_is_not_taken_for_a_spoof(mutant_edge, local_edge):
    """The test above fails on a broken copy: with a route that merely fails, the probe's failure is another."""
    dashboard = f"reverse_proxy 127.0.0.1:{local_edge.upstream_ports['dashboard']}"
    base = mutant_edge(edit=lambda text: text.replace(dashboard, "reverse_proxy 127.0.0.1:1"))
    with pytest.raises(AssertionError) as raised:
        assert_identity_not_spoofable(base, local_edge.key)
    assert not re.search(SPOOFED, str(raised.value)), "a broken route would pass for the spoofing the test looks for"


@pytest.mark.parametrize("key", ["sk-live*", "sk-{http.request.uri}", 'sk-a"b\\c*?[x]'])
def test_the_edge_compares_keys_exactly_whatever_they_hold(mutant_edge, local_edge, key):
    """A key ending in `*` once turned the check into a prefix match; braces could read as placeholders."""
    base = mutant_edge(key=key, upstreams={"model-gateway": local_edge.api_echo_port})
    exact = httpx.get(f"{base}/llm/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert exact.status_code == 200 and exact.json()["path"] == "/v1/models", f"the exact key was refused: {exact.text}"
    near_misses = {key + "x", key[:-1], key.split("*")[0], "sk-/llm/v1/models", "sk-live"} - {key}
    for near in sorted(near_misses):
        response = httpx.get(f"{base}/llm/v1/models", headers={"Authorization": f"Bearer {near}"}, timeout=30)
        assert response.status_code == 401, f"the near-miss key {near!r} passed for {key!r}"


def test_an_edge_without_its_api_allow_list_fails_the_metrics_probe(mutant_edge, local_edge):
    """The probe of /llm/metrics must tell the edge's allow-list from LiteLLM's own refusal: with the allow-list
    gone, the master key in LiteLLM's preferred header is the only thing left between a client and the metrics."""
    not_api = markers.NOT_API
    allow_list = re.compile(rf"\n\t*(?:@{not_api} |header @{not_api} |respond @{not_api} )[^\n]*")
    base = mutant_edge(edit=lambda text: allow_list.sub("", text))
    headers = {"Authorization": f"Bearer {local_edge.key}", "X-Litellm-Api-Key": local_edge.key}
    response = httpx.get(f"{base}/llm/metrics", headers=headers, timeout=30)
    assert response.status_code != 404, "the mutant is not the intended break"
    assert not refused_by_allow_list(response), "the metrics probe would pass an edge without its allow-list"
