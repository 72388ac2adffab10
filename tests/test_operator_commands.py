"""What the operator's commands never do: send the master key off this host, leave a client's key readable by
others, let a metric label drive the terminal, or answer a malformed outputs file with a traceback; and a
stack rendered for loopback keeps every listener, the edge's metrics too, on loopback."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.stacks import ROOT
from policy.gateway_contract import MASTER_KEY_ENV
from tailnet_llm_gateway.client_config import client_output
from tailnet_llm_gateway.usage import Usage, render_usage

CLIENT = {"key": "sk-laptop-0123456789abcdef", "baseUrls": {"/llm/*": "https://llm.example.ts.net/llm/v1"}}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tailnet_llm_gateway", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, (
        f"not one line with exit 2: {result.returncode} {result.stderr}"
    )
    return lines[0]


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.10:11435/metrics/",
        "https://metrics.example.com/metrics/",
        "ftp://127.0.0.1/metrics",
        "127.0.0.1",
    ],
)
def test_usage_sends_the_master_key_to_no_url_off_this_hosts_loopback(url):
    result = _cli("usage", "--url", url, env={MASTER_KEY_ENV: "sk-master-0123456789abcdef"})
    line = _one_line_error(result)
    assert "--url" in line and "loopback" in line, f"usage would send the master key to {url}: {line}"


def test_usage_takes_a_loopback_url():
    # Nothing answers on this port: the URL is taken, and reading it fails as a read, not as a refused URL.
    result = _cli("usage", "--url", "http://127.0.0.1:9/metrics/", env={MASTER_KEY_ENV: "sk-master-0123456789abcdef"})
    assert result.returncode == 1 and "loopback" not in result.stderr, result.stderr


def test_usage_prints_no_label_text_a_terminal_would_obey():
    hostile = Usage(caller="laptop", model="\x1b]0;owned\x07\x1b[2J", requests=1)
    table = render_usage({("laptop", hostile.model): hostile}, "table", "since each replica started")
    assert "\x1b" not in table and "\x07" not in table, "a metric label would send escape sequences to the terminal"
    assert "\\x1b]0;owned" in table, "the label is not shown at all: the operator cannot see what was sent"
    document = render_usage({("laptop", hostile.model): hostile}, "json", "since each replica started")
    assert "\x1b" not in document and json.loads(document)["usage"][0]["model"] == hostile.model


def _outputs(tmp_path: Path, outputs: object) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path


def test_client_config_out_writes_the_key_for_its_owner_alone(tmp_path):
    outputs = _outputs(tmp_path, {client_output("laptop"): {**CLIENT, "models": ["local-chat"]}})
    target = tmp_path / "laptop.env"
    target.write_text("old")
    target.chmod(0o644)
    result = _cli("client-config", "laptop", "--format", "env", "--outputs", str(outputs), "--out", str(target))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600, f"the key file is {oct(target.stat().st_mode)}: others read it"
    assert CLIENT["key"] in target.read_text() and CLIENT["key"] not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("outputs", "names"),
    [
        ({client_output("laptop"): {"baseUrls": CLIENT["baseUrls"], "models": []}}, "client-laptop.key"),
        ({client_output("laptop"): {**CLIENT, "models": "local-chat"}}, "client-laptop.models"),
        (
            {client_output("laptop"): {**CLIENT, "baseUrls": ["https://h/llm/v1"], "models": []}},
            "client-laptop.baseUrls",
        ),
        ({client_output("laptop"): "sk-laptop"}, "client-laptop"),
        ({"masterKey": "sk-master-0123456789abcdef"}, "client-master.baseUrls"),
    ],
    ids=["no-key", "models-not-a-list", "base-urls-not-a-map", "not-an-object", "master-without-routes"],
)
def test_a_malformed_outputs_file_is_one_line_naming_the_output(tmp_path, outputs, names):
    client = "master" if "masterKey" in outputs else "laptop"
    line = _one_line_error(_cli("client-config", client, "--outputs", str(_outputs(tmp_path, outputs))))
    assert names in line, f"the error does not name {names}: {line}"


def test_a_stack_rendered_for_loopback_keeps_the_edges_metrics_on_loopback(tmp_path):
    result = _cli("render", "--stack", "dev-node", "--out", str(tmp_path), "--listen", "127.0.0.1:18080")
    assert result.returncode == 0, result.stderr
    caddyfile = (tmp_path / "Caddyfile").read_text()
    assert "http://:9180" not in caddyfile and "http://127.0.0.1:9180 {" in caddyfile, (
        "checked on this host, the edge's metrics would listen on every interface"
    )
