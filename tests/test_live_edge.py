"""Live guarantees of the edge: the real Caddy and the real LiteLLM on loopback, dev stack routes.

This is the replaced system's hand validation (curl through the edge), run on every change, plus the
things it never checked: key-less pages, spoofed identity, path tricks, streaming, failing closed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib.metadata import version

import httpx
import pytest

from harness import fakes
from harness.stacks import ROOT
from tailnet_llm_gateway.images import LITELLM_VERSION
from tests.edge_probes import SESSION, SPOOFED_IDENTITY, assert_identity_not_spoofable, is_json_error, raw_get


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_litellm_under_test_is_the_deployed_version():
    assert version("litellm") == LITELLM_VERSION, "the live tests would check another LiteLLM than the image runs"


def test_litellm_loads_the_rendered_config_and_lists_the_models(local_edge):
    response = httpx.get(f"{local_edge.litellm_url}/v1/models", headers=_auth(local_edge.key), timeout=30)
    assert response.status_code == 200, response.text
    assert sorted(m["id"] for m in response.json()["data"]) == ["local-chat", "local-embed"], (
        "LiteLLM lists other models than the rendered config names"
    )


def test_models_listed_with_the_key_through_the_edge(local_edge):
    response = httpx.get(f"{local_edge.base_url}/llm/v1/models", headers=_auth(local_edge.key), timeout=30)
    assert response.status_code == 200, f"clients could not list models: {response.status_code} {response.text[:200]}"
    assert sorted(m["id"] for m in response.json()["data"]) == ["local-chat", "local-embed"], (
        "clients would see other models than the stack serves"
    )


def test_the_node_keeps_no_idle_connection_a_reload_could_close(local_edge):
    """tailnet-node: every answer closes its connection, so the node's serve never sends a request on an idle
    connection a reload is closing (Go's client would not send that completion again: a 502). host-bind:
    clients keep their connection."""
    with httpx.Client(timeout=30) as client:
        answers = [
            client.get(f"{local_edge.base_url}{path}", headers=_auth(local_edge.key))
            for path in ("/healthz", "/llm/v1/models", "/readyz")
        ]
    closed = [a.headers.get("Connection") == "close" for a in answers]
    expected = local_edge.stack == "dev-node"
    assert closed == [expected] * len(answers), (
        f"{local_edge.stack}: Connection: close on {closed} (a node's idle connection could meet a reload)"
        if expected
        else f"{local_edge.stack}: clients' connections closed after each answer: {closed}"
    )


def test_missing_key_gets_401_json_not_a_redirect(local_edge):
    response = httpx.get(f"{local_edge.base_url}/llm/v1/models", timeout=30)
    assert response.status_code == 401, f"API clients without a key got {response.status_code} (302 = sent to SSO)"
    assert response.json()["error"]["type"] == "auth_error", "clients could not tell a missing key from another error"


def test_wrong_key_gets_401_not_400(local_edge):
    response = httpx.get(f"{local_edge.base_url}/llm/v1/models", headers=_auth("sk-wrong-key-123"), timeout=30)
    assert response.status_code == 401, f"a wrong key got {response.status_code}; LiteLLM alone answers 400"
    assert response.json()["error"]["type"] == "auth_error", "clients could not tell a wrong key from another error"


def test_chat_completion_through_the_edge(local_edge):
    body = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
    response = httpx.post(
        f"{local_edge.base_url}/llm/v1/chat/completions", json=body, headers=_auth(local_edge.key), timeout=60
    )
    assert response.status_code == 200, response.text[:500]
    assert response.json()["choices"][0]["message"]["content"] == "pong", "the completion did not come from the backend"


def test_embeddings_through_the_edge(local_edge):
    body = {"model": "local-embed", "input": ["a", "b"]}
    response = httpx.post(
        f"{local_edge.base_url}/llm/v1/embeddings", json=body, headers=_auth(local_edge.key), timeout=60
    )
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["data"]) == 2 and response.json()["data"][0]["embedding"] == [0.1, 0.2, 0.3], (
        "embeddings did not come back for every input"
    )


def test_streaming_arrives_chunk_by_chunk_through_the_edge(local_edge):
    body = {"model": "local-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    started = time.monotonic()
    first_at, words = None, []
    with httpx.stream(
        "POST", f"{local_edge.base_url}/llm/v1/chat/completions", json=body, headers=_auth(local_edge.key), timeout=60
    ) as response:
        assert response.status_code == 200, "streaming through the edge failed"
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
            if delta:
                first_at = first_at or time.monotonic() - started
                words.append(delta)
    total = time.monotonic() - started
    assert "".join(words) == "".join(fakes.STREAM_WORDS), f"the stream lost content: {words}"
    assert first_at is not None and first_at < fakes.STREAM_PAUSE_S * 0.8, (
        f"first chunk after {first_at:.2f}s of {total:.2f}s: the edge or LiteLLM buffered the stream"
    )
    assert total >= fakes.STREAM_PAUSE_S, "the backend's pause did not happen; the test proves nothing"


def test_catch_all_is_protected_too(local_edge):
    response = httpx.get(f"{local_edge.base_url}/some/page", timeout=30)
    assert response.status_code == 302 and "/oauth2/start?rd=" in response.headers["location"], (
        "the catch-all would serve a signed-out browser"
    )


def test_protected_route_with_a_session_reaches_its_upstream_prefix_stripped(local_edge):
    dash = httpx.get(f"{local_edge.base_url}/dash/panel", headers=SESSION, timeout=30)
    assert dash.status_code == 200 and dash.json()["upstream"] == "dashboard" and dash.json()["path"] == "/panel", (
        "a signed-in browser would not reach the dashboard, or would send it the /dash prefix"
    )
    webui = httpx.get(f"{local_edge.base_url}/chats/1", headers=SESSION, timeout=30)
    assert (
        webui.status_code == 200 and webui.json()["upstream"] == "open-webui" and webui.json()["path"] == "/chats/1"
    ), "a signed-in browser would not reach open-webui at the path it asked for"


def test_client_identity_headers_never_reach_an_upstream(local_edge):
    assert_identity_not_spoofable(local_edge.base_url, local_edge.key)


def test_client_identity_headers_never_reach_the_api_upstream(local_edge):
    response = httpx.get(
        f"{local_edge.api_echo_base_url}/llm/v1/models",
        headers={**SPOOFED_IDENTITY, **_auth(local_edge.key)},
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["path"] == "/v1/models", "handle_path did not strip /llm"
    seen = {k.lower() for k in response.json()["headers"]}
    leaked = sorted(name for name in SPOOFED_IDENTITY if name.lower() in seen)
    assert not leaked, f"the /llm bypass passed client identity headers to LiteLLM: {leaked}"


@pytest.mark.parametrize(
    "raw_path",
    [
        "/dash/../dash/panel",
        "/DASH/panel",
        "//dash/panel",
        "/dash//panel",
        "/%64ash/panel",
        "/llm/../dash/panel",
        "/llm/..%2fdash/panel",
        "/llm/v1/..%2f..%2fdash/panel",
        "/oauth2/../dash/panel",
        "/oauth2/..%2f..%2fdash/panel",
        "/healthz/../dash/panel",
        "/%2e%2e/dash/panel",
        "/llm%2f../dash/panel",
        "/./dash/panel",
    ],
)
def test_path_tricks_never_reach_a_protected_upstream_without_a_session(local_edge, raw_path):
    status, headers, body = raw_get(local_edge.base_url, raw_path)
    reached = status == 200 and body.startswith(b"{") and b'"upstream": "' in body and b'"oauth2-proxy"' not in body
    assert not reached, f"{raw_path} reached a protected upstream without SSO: {body[:200]!r}"
    assert status in (302, 400, 401, 404) or (status == 200 and b'"oauth2-proxy"' in body), (
        f"{raw_path} got an unexpected {status}"
    )


@pytest.mark.parametrize(
    "page",
    [
        "/llm/",
        "/llm/openapi.json",
        "/llm/routes",
        "/llm/ui/",
        "/llm/docs",
        "/llm/health/liveliness",
        "/llm/health/readiness",
        "/llm/test",
        "/llm/.well-known/litellm-ui-config",
        "/llm/public/model_hub",
        "/llm/metrics",
        "/llm/config/yaml",
    ],
)
def test_litellm_keyless_pages_are_not_reachable_under_llm(local_edge, page):
    for headers in ({}, _auth(local_edge.key)):
        status, _, body = raw_get(local_edge.base_url, page, headers)
        assert status == 404 and is_json_error(body), f"{page} answered {status}: LiteLLM's page is on the tailnet"


def test_llm_without_trailing_path_falls_to_the_protected_fallback(local_edge):
    status, headers, _ = raw_get(local_edge.base_url, "/llm")
    assert status == 302 and "/oauth2/start" in headers["location"], "/llm would bypass SSO"


def test_healthz_answers_without_sso(local_edge):
    response = httpx.get(f"{local_edge.base_url}/healthz", timeout=30)
    assert response.status_code == 200 and response.text == "ok", "monitors would not get their fixed answer"


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Bearer", "Bearer sk-anything"])
def test_empty_key_at_run_time_fails_closed(local_edge, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    status, _, body = raw_get(local_edge.keyless_base_url, "/llm/v1/models", headers)
    assert status == 503 and is_json_error(body), f"with no key configured the API answered {status}: open, not closed"


def test_smoke_cli_passes_against_the_local_edge(local_edge):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tailnet_llm_gateway",
            "smoke",
            "--base-url",
            f"{local_edge.base_url}/llm/v1",
            "--model",
            "local-chat",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"LITELLM_MASTER_KEY": local_edge.key, "PATH": ""},
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(lines) == 6 and all(line.startswith("ok") for line in lines), result.stdout
    assert local_edge.key not in result.stdout + result.stderr, "smoke printed the key"


def test_smoke_cli_fails_against_litellm_without_the_edge(local_edge):
    """LiteLLM alone serves key-less pages (openapi.json and more): smoke must say so."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tailnet_llm_gateway",
            "smoke",
            "--base-url",
            f"{local_edge.litellm_url}/v1",
            "--key",
            local_edge.key,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stdout
    assert "FAIL LiteLLM's key-less pages hidden" in result.stdout, "smoke would not say what is wrong with LiteLLM"
    assert "FAIL backend addresses hidden" in result.stdout, "smoke would not see LiteLLM's admin model info"
    # The rendered custom auth makes LiteLLM itself answer a wrong key with 401 (without it: 400).
    assert "ok   wrong key gets 401" in result.stdout, result.stdout


def test_litellm_alone_answers_401_without_a_key(local_edge):
    """Proves prisma is importable in the test environment: otherwise LiteLLM answers 500 here."""
    response = httpx.get(f"{local_edge.litellm_url}/v1/models", timeout=30)
    assert response.status_code == 401, f"LiteLLM answered {response.status_code}; is prisma installed?"
