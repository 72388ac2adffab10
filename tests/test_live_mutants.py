"""Tests of the live tests: an edge broken on purpose must make the live probes fail.

If one of these passes with the probes saying "fine", the live suite has stopped guarding that property.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, stack_values, write_stack
from tests.edge_probes import assert_identity_not_spoofable
from tests.processes import free_port, render, start_caddy


@pytest.fixture
def mutant_edge(local_edge, tmp_path):
    """Start a Caddy for a mutated stack (settings or rendered text) on the local edge's upstreams."""
    started = []

    def start(values: dict | None = None, edit=None) -> str:
        project = tmp_path / f"project{len(started)}"
        project.mkdir()
        shutil.copy(ROOT / "Pulumi.yaml", project)
        shutil.copytree(ROOT / "tailnet", project / "tailnet")
        write_stack(project, "mutant", values or stack_values("dev"))
        port = free_port()
        out = render("mutant", project / "out", project, local_edge.upstream_ports, port)
        caddyfile = out / "Caddyfile"
        if edit is not None:
            caddyfile.write_text(edit(caddyfile.read_text()))
        started.append(start_caddy(caddyfile, port, local_edge.log_dir, local_edge.key, name=f"mutant{len(started)}"))
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in started:
        proc.stop()


def test_llm_behind_sso_fails_the_smoke_check(mutant_edge, local_edge):
    values = stack_values("dev")
    for route in values["routes"]:
        if route["path"] == "/llm/*":
            route["auth"] = "sso"
    base = mutant_edge(values)
    assert httpx.get(f"{base}/llm/v1/models", timeout=30).status_code == 302, "the mutant is not the intended break"
    result = subprocess.run(
        [sys.executable, "-m", "components", "smoke", "--base-url", f"{base}/llm/v1", "--key", local_edge.key],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 1 and "FAIL no key gets 401" in result.stdout, result.stdout


def test_dropping_the_identity_strip_fails_the_identity_probe(mutant_edge, local_edge):
    base = mutant_edge(edit=lambda text: text.replace("import strip_client_identity\n", ""))
    with pytest.raises(AssertionError):
        assert_identity_not_spoofable(base, local_edge.key)
