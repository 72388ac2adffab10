"""Live guarantees of the three ways to authenticate, with the real Caddy and the real LiteLLM on loopback:
named clients with keys of their own, two bearer routes with different clients, tailnet identity as the
gateway's node vouches for it, and the client-config command's output used by the real openai SDK.

The clients' stack (tests/conftest.py), in both exposure modes: laptop may use /llm/* and /mcp/* and every
model; ci only /llm/* and local-chat. Tailnet routes exist only on a tailnet node (`node_edge`); requests
"from the node" come from 127.0.0.2, as serve's would from its address.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time

import httpx
import openai
import pytest

from harness import fakes
from harness.ports import free_port
from harness.processes import EDGE_KEY, render, start_caddy
from harness.stacks import CLIENTS_STACK, NODE_ADDRESS, ROOT, new_project
from policy.gateway_contract import client_key_file
from tailnet_llm_gateway.client_config import client_output
from tests.edge_probes import access_log_lines

CAPABILITY = "llm.tail0a1b2c.ts.net/cap/tsllm"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _models(base_url: str, headers: dict[str, str], route: str = "/llm") -> httpx.Response:
    return httpx.get(f"{base_url}{route}/v1/models", headers=headers, timeout=30)


def _from_node(url: str, headers: dict[str, str]) -> httpx.Response:
    """A request as the gateway's Tailscale node forwards it: from its address, with serve's headers."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=NODE_ADDRESS), timeout=30) as client:
        return client.get(url, headers=headers)


def _serve_headers(capability: str | None = CAPABILITY, login: str | None = "alice@example.com") -> dict[str, str]:
    """What serve sets: the caller's grants of the accepted capabilities as JSON, and a user's login."""
    # Go's json.Marshal, as serve writes it: no spaces.
    grants = {capability: [{}]} if capability else {}
    headers = {"Tailscale-App-Capabilities": json.dumps(grants, separators=(",", ":"))}
    if login is not None:
        headers |= {"Tailscale-User-Login": login, "Tailscale-User-Name": "Alice"}
    return headers


def _last_echo(edge) -> dict[str, str]:
    return {k.lower(): v for k, v in edge.echo.httpd.requests[-1][2].items()}


# ---- named clients -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "route"), [("laptop", "/llm"), ("ci", "/llm"), ("laptop", "/mcp")])
def test_each_client_key_works_where_it_is_allowed(clients_edge, client, route):
    key = _bearer(clients_edge.client_keys[client])
    url = f"{clients_edge.base_url}/llm/v1/models" if route == "/llm" else f"{clients_edge.base_url}/mcp/messages/1"
    response = httpx.get(url, headers=key, timeout=30)
    assert response.status_code == 200, f"{client} was refused on {route}: {response.status_code} {response.text}"


def test_a_client_key_file_being_written_keeps_out_that_client_only(clients_edge):
    # Docker writes a key file in place, so it reads empty for a moment while a client's key changes.
    ci_file = clients_edge.out_dir / "keys" / client_key_file("ci")
    ci_key = ci_file.read_text()
    ci_file.write_text("")
    try:
        laptop = httpx.get(
            f"{clients_edge.base_url}/llm/v1/models", headers=_bearer(clients_edge.client_keys["laptop"]), timeout=30
        )
        ci = httpx.get(f"{clients_edge.base_url}/llm/v1/models", headers=_bearer(ci_key), timeout=30)
        empty = httpx.get(f"{clients_edge.base_url}/llm/v1/models", headers={"X-Api-Key": ""}, timeout=30)
    finally:
        ci_file.write_text(ci_key)
    assert laptop.status_code == 200, f"one client's key being written refused another: {laptop.status_code}"
    assert ci.status_code == 401, f"ci got {ci.status_code} while its key file was empty"
    assert empty.status_code == 401, "an empty key matched the client whose key file was empty"


def test_a_key_valid_on_one_bearer_route_is_401_on_another(clients_edge):
    ci = _bearer(clients_edge.client_keys["ci"])
    before = len(clients_edge.mcp.httpd.requests)
    response = httpx.get(f"{clients_edge.base_url}/mcp/messages/1", headers=ci, timeout=30)
    assert response.status_code == 401, f"ci, allowed only /llm/*, got {response.status_code} on /mcp/*"
    assert len(clients_edge.mcp.httpd.requests) == before, "the refused request reached the MCP server"


def test_the_master_key_is_refused_at_the_edge_when_clients_are_defined(clients_edge):
    response = _models(clients_edge.base_url, _bearer(clients_edge.master_key))
    assert response.status_code == 401, f"the master key still opens the API: {response.status_code}"


def test_a_client_may_use_only_its_models(clients_edge):
    ci, laptop = (_bearer(clients_edge.client_keys[c]) for c in ("ci", "laptop"))
    listed = [m["id"] for m in _models(clients_edge.base_url, ci).json()["data"]]
    assert listed == ["local-chat"], f"ci sees models it may not use: {listed}"
    body = {"model": "local-embed", "input": "x"}
    refused = httpx.post(f"{clients_edge.base_url}/llm/v1/embeddings", json=body, headers=ci, timeout=30)
    assert refused.status_code == 403, f"ci used local-embed: {refused.status_code} {refused.text[:200]}"
    allowed = httpx.post(f"{clients_edge.base_url}/llm/v1/embeddings", json=body, headers=laptop, timeout=30)
    assert allowed.status_code == 200, f"laptop could not use local-embed: {allowed.status_code}"


def test_litellm_gets_the_client_name_and_the_edge_key_never_a_client_key_or_the_master_key(clients_edge):
    key = clients_edge.client_keys["laptop"]
    response = httpx.get(f"{clients_edge.echo_base_url}/llm/v1/models", headers={"x-api-key": key}, timeout=30)
    assert response.status_code == 200, response.text
    seen = _last_echo(clients_edge)
    assert seen.get("x-gateway-client") == "laptop", f"LiteLLM would not know the client: {seen}"
    assert seen.get("authorization") == f"Bearer {EDGE_KEY}", "LiteLLM would not accept the call"
    assert key not in json.dumps(seen), "the client's own key reached LiteLLM"
    assert clients_edge.master_key not in json.dumps(seen), "the edge handed on LiteLLM's admin key"


def test_a_forged_client_name_is_replaced(clients_edge):
    headers = {**_bearer(clients_edge.client_keys["laptop"]), "X-Gateway-Client": "ci"}
    httpx.get(f"{clients_edge.echo_base_url}/llm/v1/models", headers=headers, timeout=30)
    assert _last_echo(clients_edge).get("x-gateway-client") == "laptop", "a client could pose as another"


def test_the_mcp_server_gets_the_client_name_and_no_credential(clients_edge):
    key = clients_edge.client_keys["laptop"]
    response = httpx.get(f"{clients_edge.base_url}/mcp/messages/7", headers=_bearer(key), timeout=30)
    assert response.status_code == 200 and response.json()["path"] == "/messages/7", "handle_path did not strip /mcp"
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    assert seen.get("x-gateway-client") == "laptop", "the MCP server would not know the client"
    leaked = [h for h in ("authorization", "x-api-key", "api-key") if h in seen]
    assert not leaked and clients_edge.master_key not in json.dumps(seen), (
        f"a credential reached the MCP server: {leaked}"
    )


def test_mcp_paths_outside_its_rules_are_404(clients_edge):
    response = httpx.get(f"{clients_edge.base_url}/mcp/admin", headers=_bearer(clients_edge.key), timeout=30)
    assert response.status_code == 404, f"/mcp/admin got {response.status_code}: the route forwards too much"


def test_server_sent_events_through_mcp_arrive_as_they_are_written(clients_edge):
    started, arrivals = time.monotonic(), []
    with httpx.stream("GET", f"{clients_edge.base_url}/mcp/sse", headers=_bearer(clients_edge.key), timeout=30) as r:
        assert r.status_code == 200, f"the event stream got {r.status_code}"
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 2, f"events lost: {arrivals}"
    assert arrivals[0] < fakes.SSE_PAUSE_S * 0.8 <= arrivals[1], (
        f"the first event came after {arrivals[0]:.2f}s: the edge buffered the stream"
    )


def test_a_removed_client_is_refused_after_rendering_again(clients_edge):
    values = clients_edge.values()
    del values["clients"]["ci"]
    project = new_project(clients_edge.work / "project-without-ci", CLIENTS_STACK, values)
    port = free_port()
    out = render(CLIENTS_STACK, clients_edge.work / "rendered-without-ci", project, clients_edge.upstream_ports, port)
    caddy = start_caddy(
        out / "Caddyfile",
        port,
        clients_edge.log_dir,
        clients_edge.master_key,
        name="caddy-without-ci",
        client_keys=clients_edge.client_keys,  # ci's key file is still there: only the Caddyfile changed
    )
    try:
        removed = _models(f"http://127.0.0.1:{port}", _bearer(clients_edge.client_keys["ci"]))
        kept = _models(f"http://127.0.0.1:{port}", _bearer(clients_edge.client_keys["laptop"]))
    finally:
        caddy.stop()
    assert removed.status_code == 401, f"a removed client's key still works: {removed.status_code}"
    assert kept.status_code == 200, f"removing ci broke laptop: {kept.status_code}"


def test_the_access_log_names_the_client_and_never_a_key(clients_edge):
    marker = f"m{time.monotonic_ns()}"
    httpx.get(
        f"{clients_edge.base_url}/llm/v1/models?{marker}=1",
        headers=_bearer(clients_edge.client_keys["ci"]),
        timeout=30,
    )
    lines = access_log_lines(clients_edge.log_dir / "caddy.log", marker)
    assert lines and lines[0].get("client") == "ci", f"the access log does not say which client called: {lines}"
    logs = "".join(p.read_text(errors="replace") for p in clients_edge.log_dir.glob("*.log"))
    for name, key in {**clients_edge.client_keys, "master": clients_edge.master_key}.items():
        assert key not in logs, f"the {name} key is in a log (Caddy's or LiteLLM's)"


@pytest.mark.parametrize(
    ("who", "key", "client", "expected"),
    [
        ("a host app (master key, no client header)", "master", None, 200),
        ("the edge's key naming a known client", "edge", "ci", 200),
        ("the edge's key naming no client", "edge", None, 401),
        ("the edge's key naming an unknown client", "edge", "nobody", 401),
        ("a client key sent to LiteLLM directly", "laptop", None, 401),
        ("a client key naming its own client", "laptop", "laptop", 401),
    ],
)
def test_litellm_itself_accepts_only_the_master_key_and_the_edge_naming_a_known_client(
    clients_edge, who, key, client, expected
):
    keys = {"master": clients_edge.master_key, "edge": EDGE_KEY, **clients_edge.client_keys}
    headers = _bearer(keys[key]) | ({"X-Gateway-Client": client} if client else {})
    response = httpx.get(f"{clients_edge.litellm_url}/v1/models", headers=headers, timeout=30)
    assert response.status_code == expected, f"LiteLLM answered {who} with {response.status_code}"


# ---- tailnet identity ----------------------------------------------------------------------------------


def test_a_caller_with_the_capability_from_the_node_gets_in_without_a_key(node_edge):
    response = _from_node(f"{node_edge.base_url}/tsllm/v1/models", _serve_headers())
    assert response.status_code == 200, f"a granted tailnet caller was refused: {response.status_code}"
    echoed = _from_node(f"{node_edge.echo_base_url}/tsllm/v1/models", _serve_headers())
    assert echoed.status_code == 200
    seen = _last_echo(node_edge)
    assert seen.get("x-gateway-client") == "tailnet:alice@example.com", f"LiteLLM would not know who called: {seen}"
    assert seen.get("authorization") == f"Bearer {EDGE_KEY}", "LiteLLM would not accept the call"


def test_each_tagged_device_with_the_capability_is_named_by_its_own_address(node_edge):
    """serve sets no login for a tagged device, but says its address in X-Forwarded-For: each device is its own
    caller (its own limits), never one shared `tagged-device` budget."""
    names = []
    for address in ("100.101.102.103", "100.101.102.104"):
        headers = _serve_headers(login=None) | {"X-Forwarded-For": address}
        response = _from_node(f"{node_edge.echo_base_url}/tsllm/v1/models", headers)
        assert response.status_code == 200, f"a granted tagged device was refused: {response.status_code}"
        names.append(_last_echo(node_edge).get("x-gateway-client"))
    assert names == ["tailnet:device:100.101.102.103", "tailnet:device:100.101.102.104"], (
        f"tagged devices would share one budget: {names}"
    )
    refused = _from_node(f"{node_edge.base_url}/tsllm/v1/models", _serve_headers(login=None))
    assert refused.status_code == 401, (
        f"a tagged device with no address was let in under no name: {refused.status_code}"
    )


@pytest.mark.parametrize(
    "headers",
    [_serve_headers(capability=None), _serve_headers(capability="llm.tail0a1b2c.ts.net/cap/other"), {}],
    ids=["no-grant", "another-capability", "no-header"],
)
def test_a_caller_without_the_capability_is_refused(node_edge, headers):
    response = _from_node(f"{node_edge.base_url}/tsllm/v1/models", headers)
    assert response.status_code == 401, f"a caller without the grant got {response.status_code}"


def test_a_forged_capability_header_not_from_the_node_is_refused(node_edge):
    before = len(node_edge.echo.httpd.requests)
    response = httpx.get(f"{node_edge.echo_base_url}/tsllm/v1/models", headers=_serve_headers(), timeout=30)
    assert response.status_code == 401, f"a forged capability header from elsewhere got {response.status_code}"
    assert len(node_edge.echo.httpd.requests) == before, "the forged request reached LiteLLM"


def test_serve_identity_reaches_upstreams_only_from_the_node(node_edge):
    forged = httpx.get(
        f"{node_edge.echo_base_url}/llm/v1/models",
        headers={**_bearer(node_edge.key), **_serve_headers()},
        timeout=30,
    )
    assert forged.status_code == 200
    assert "tailscale-user-login" not in _last_echo(node_edge), "a client could tell LiteLLM it is alice"


def test_the_access_log_names_the_tailnet_caller(node_edge):
    marker = f"t{time.monotonic_ns()}"
    _from_node(f"{node_edge.base_url}/tsllm/v1/models?{marker}=1", _serve_headers())
    lines = access_log_lines(node_edge.log_dir / "caddy.log", marker)
    assert lines and lines[0].get("client") == "tailnet:alice@example.com", f"who called is not logged: {lines}"
    assert lines[0].get("tailnet_user") == "alice@example.com", f"serve's login is not logged: {lines}"


def test_a_key_is_no_substitute_for_the_capability(node_edge):
    response = httpx.get(f"{node_edge.base_url}/tsllm/v1/models", headers=_bearer(node_edge.key), timeout=30)
    assert response.status_code == 401, f"a key opened the tailnet route: {response.status_code}"


# ---- client configs ------------------------------------------------------------------------------------


def test_client_config_env_output_drives_the_openai_sdk(clients_edge, tmp_path):
    # The outputs as `pulumi stack output --json --show-secrets` prints them for this client (the program
    # exports this shape: tests/test_program.py), with the live edge as its address.
    outputs = {
        client_output("ci"): {
            "name": "ci",
            "key": clients_edge.client_keys["ci"],
            "baseUrls": {"/llm/*": f"{clients_edge.base_url}/llm/v1"},
            "models": ["local-chat"],
        }
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tailnet_llm_gateway",
            "client-config",
            "ci",
            "--format",
            "env",
            "--outputs",
            "outputs.json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in result.stdout.splitlines())
    client = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], max_retries=0)
    assert [m.id for m in client.models.list()] == ["local-chat"], "the printed settings do not reach the gateway"


def test_litellm_takes_a_rewritten_client_table_without_a_restart(clients_edge):
    """Adding or revoking a client rewrites clients.json beside the auth module; LiteLLM keeps running."""
    table = clients_edge.out_dir / "clients.json"
    original = table.read_text()

    def as_edge(client: str) -> httpx.Response:
        headers = {**_bearer(EDGE_KEY), "X-Gateway-Client": client}
        return httpx.get(f"{clients_edge.litellm_url}/v1/models", headers=headers, timeout=30)

    try:
        assert as_edge("tablet").status_code == 401, "an unknown client was served"
        table.write_text(json.dumps({"laptop": None, "tablet": ["local-chat"]}))
        added = as_edge("tablet")
        assert added.status_code == 200 and [m["id"] for m in added.json()["data"]] == ["local-chat"], (
            f"a client added to the table was not served, or not limited: {added.status_code} {added.text[:200]}"
        )
        assert as_edge("ci").status_code == 401, "a client revoked from the table was still served"
        table.write_text("")  # as the file is while it is being rewritten
        assert as_edge("tablet").status_code == 200, "a table being rewritten locked every client out"
    finally:
        table.write_text(original)
    assert as_edge("ci").status_code == 200 and as_edge("tablet").status_code == 401, "the table did not come back"
