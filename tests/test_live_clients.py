"""Live guarantees for clients as they really are: every way of presenting a key, browsers (CORS), the
OpenAI and Anthropic SDKs, backend hiccups, several backends per model, readiness and the access log.

Real Caddy and real LiteLLM on loopback; the backends are fakes that speak only chat completions (no
`/v1/responses`), each in its own process where a test stops it as a crash would.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import anthropic
import httpx
import openai
import pytest

from harness import fakes
from harness.processes import EDGE_KEY
from harness.stacks import ALLOWED_ORIGIN
from tests.edge_probes import SESSION, SPOOFED_IDENTITY, access_log_lines

CHAT = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
OTHER_ORIGIN = "https://evil.example"


def _chat(base_url: str, headers: dict[str, str], timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{base_url}/llm/v1/chat/completions", json=CHAT, headers=headers, timeout=timeout)


def _key_presentations(key: str) -> dict[str, dict[str, str]]:
    return {
        "Authorization: Bearer": {"Authorization": f"Bearer {key}"},
        "Authorization: bearer": {"Authorization": f"bearer {key}"},
        "Authorization: BEARER": {"Authorization": f"BEARER {key}"},
        "x-api-key": {"x-api-key": key},
        "api-key": {"api-key": key},
        "Bearer and x-api-key, the same key": {"Authorization": f"Bearer {key}", "x-api-key": key},
    }


PRESENTATIONS = list(_key_presentations("k"))


# ---- key presentation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("presentation", PRESENTATIONS)
def test_every_key_presentation_is_accepted_with_the_right_key(local_edge, presentation):
    headers = _key_presentations(local_edge.key)[presentation]
    response = httpx.get(f"{local_edge.base_url}/llm/v1/models", headers=headers, timeout=30)
    assert response.status_code == 200, f"a client sending {presentation} got {response.status_code}: cannot use it"


@pytest.mark.parametrize("presentation", PRESENTATIONS)
def test_every_key_presentation_is_refused_with_a_wrong_key(local_edge, presentation):
    headers = _key_presentations(local_edge.key + "x")[presentation]
    response = httpx.get(f"{local_edge.base_url}/llm/v1/models", headers=headers, timeout=30)
    assert response.status_code == 401 and response.json()["error"]["type"] == "auth_error", (
        f"a wrong key as {presentation} got {response.status_code}"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer {key}", "x-api-key": "sk-other"},
        {"x-api-key": "{key}", "api-key": "sk-other"},
        {"Authorization": "Bearer sk-other", "api-key": "{key}"},
    ],
    ids=["bearer+x-api-key", "x-api-key+api-key", "api-key+bearer"],
)
def test_a_request_with_two_different_keys_is_refused(local_edge, headers):
    sent = {name: value.format(key=local_edge.key) for name, value in headers.items()}
    response = httpx.get(f"{local_edge.base_url}/llm/v1/models", headers=sent, timeout=30)
    assert response.status_code == 401, f"one right key let a second, wrong one through: {response.status_code}"


@pytest.mark.parametrize("presentation", ["Authorization: bearer", "x-api-key", "api-key"])
def test_litellm_gets_the_edge_key_once_as_a_bearer_token_and_never_the_clients(local_edge, presentation):
    headers = _key_presentations(local_edge.key)[presentation]
    response = httpx.get(f"{local_edge.api_echo_base_url}/llm/v1/models", headers=headers, timeout=30)
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    assert seen.get("authorization") == f"Bearer {EDGE_KEY}", "LiteLLM would not find the edge's key where it looks"
    assert "x-api-key" not in seen and "api-key" not in seen, "a copy of the client's key would reach LiteLLM"
    assert local_edge.key not in str(seen), "the client's key (here the master key) would reach LiteLLM"


# ---- CORS ----------------------------------------------------------------------------------------------


def _preflight(base_url: str, origin: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    return httpx.options(f"{base_url}/llm/v1/chat/completions", headers=headers, timeout=30)


def test_a_preflight_from_an_allowed_origin_is_answered_at_the_edge(clients_edge):
    before = len(clients_edge.echo.httpd.requests)
    response = _preflight(clients_edge.echo_base_url, ALLOWED_ORIGIN)
    assert response.status_code == 204, f"the browser's preflight got {response.status_code}: no browser tool works"
    assert response.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN, "the origin would not be allowed"
    assert "POST" in response.headers.get("access-control-allow-methods", ""), "POST would not be allowed"
    assert "authorization" in response.headers.get("access-control-allow-headers", "").lower(), (
        "the browser could not send the key"
    )
    assert int(response.headers.get("access-control-max-age", "0")) > 0, "every call would need a new preflight"
    assert len(clients_edge.echo.httpd.requests) == before, "the key-less preflight reached LiteLLM"


def test_a_preflight_from_another_origin_gets_no_allow_headers(clients_edge):
    before = len(clients_edge.echo.httpd.requests)
    response = _preflight(clients_edge.echo_base_url, OTHER_ORIGIN)
    allowed = {k for k in response.headers if k.lower().startswith("access-control-allow")}
    assert not allowed, f"a page of {OTHER_ORIGIN} would be allowed to call the API: {allowed}"
    assert response.status_code == 403, f"an OPTIONS from another origin got {response.status_code}"
    assert len(clients_edge.echo.httpd.requests) == before, "the key-less preflight reached LiteLLM"


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("OPTIONS", {"Origin": ALLOWED_ORIGIN}),  # not a preflight: no Access-Control-Request-Method
        ("GET", {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"}),
        ("POST", {"Origin": ALLOWED_ORIGIN}),
    ],
    ids=["options-without-request-method", "get-dressed-as-preflight", "post-from-allowed-origin"],
)
def test_nothing_but_a_preflight_skips_the_key(clients_edge, method, headers):
    before = len(clients_edge.echo.httpd.requests)
    response = httpx.request(method, f"{clients_edge.echo_base_url}/llm/v1/models", headers=headers, timeout=30)
    assert response.status_code == 401, f"{method} without a key got {response.status_code}"
    assert len(clients_edge.echo.httpd.requests) == before, f"a key-less {method} reached LiteLLM"


def test_only_an_allowed_origin_may_read_the_answers(clients_edge):
    key = {"Authorization": f"Bearer {clients_edge.key}"}
    allowed = httpx.get(f"{clients_edge.base_url}/llm/v1/models", headers={**key, "Origin": ALLOWED_ORIGIN}, timeout=30)
    assert allowed.status_code == 200 and allowed.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN, (
        f"a page of the allowed origin could not read the answer: {allowed.headers.get('access-control-allow-origin')}"
    )
    other = httpx.get(f"{clients_edge.base_url}/llm/v1/models", headers={**key, "Origin": OTHER_ORIGIN}, timeout=30)
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers, (
        f"a page of another origin got {other.status_code} and "
        f"`{other.headers.get('access-control-allow-origin')}`: it could use and read the API"
    )


# ---- the SDKs people use -------------------------------------------------------------------------------


def test_the_openai_sdk_lists_models_and_chats_plain_and_streamed(local_edge):
    client = openai.OpenAI(base_url=f"{local_edge.base_url}/llm/v1", api_key=local_edge.key, max_retries=0)
    assert {m.id for m in client.models.list()} == {"local-chat", "local-embed"}, "the SDK saw other models"
    reply = client.chat.completions.create(model="local-chat", messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.content == "pong", "the SDK's chat call did not reach the backend"
    stream = client.chat.completions.create(
        model="local-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "".join(fakes.STREAM_WORDS), f"the SDK's stream lost content: {text!r}"


def _anthropic_client(local_edge, as_bearer: bool) -> anthropic.Anthropic:
    # The SDK adds /v1/messages to the base URL; it sends the key as x-api-key, or as Bearer (auth_token).
    credentials = {"auth_token": local_edge.key, "api_key": None} if as_bearer else {"api_key": local_edge.key}
    return anthropic.Anthropic(base_url=f"{local_edge.base_url}/llm", max_retries=0, **credentials)


@pytest.mark.parametrize("as_bearer", [False, True], ids=["x-api-key", "bearer"])
def test_the_anthropic_sdk_gets_messages_from_a_chat_completions_backend(local_edge, as_bearer):
    client = _anthropic_client(local_edge, as_bearer)
    served_before = len(_served(local_edge.backend_url))
    message = client.messages.create(model="local-chat", max_tokens=64, messages=[{"role": "user", "content": "ping"}])
    assert [block.text for block in message.content if block.type == "text"] == ["pong"], (
        f"Messages API clients would not get the backend's answer: {message.content}"
    )
    served = _served(local_edge.backend_url)[served_before:]
    assert "POST /v1/chat/completions" in served and not any("/responses" in s for s in served), (
        f"LiteLLM asked the backend {served}, which a llama.cpp server does not serve"
    )


@pytest.mark.parametrize("as_bearer", [False, True], ids=["x-api-key", "bearer"])
def test_the_anthropic_sdk_streams_messages_from_a_chat_completions_backend(local_edge, as_bearer):
    client = _anthropic_client(local_edge, as_bearer)
    stream = client.messages.create(
        model="local-chat", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(
        event.delta.text for event in stream if event.type == "content_block_delta" and event.delta.type == "text_delta"
    )
    assert text == "".join(fakes.STREAM_WORDS), f"the Messages stream lost content: {text!r}"


def _served(backend_url: str) -> list[str]:
    return httpx.get(f"{backend_url}/_fake/requests", timeout=10).json()


# ---- backend faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 401, 500])
def test_one_backend_failure_does_not_lock_clients_out(local_edge, status):
    key = {"Authorization": f"Bearer {local_edge.key}"}
    httpx.post(f"{local_edge.backend_url}/_fake/fail-next", json={"status": status, "count": 1}, timeout=10)
    _chat(local_edge.base_url, key)  # the failed call (or its retry)
    time.sleep(0.5)
    response = _chat(local_edge.base_url, key)
    assert response.status_code == 200, (
        f"after one {status} from a healthy backend, the next call 0.5 s later got {response.status_code}: "
        f"{response.text[:200]}"
    )


def test_a_stopped_backend_gives_a_quick_json_error_and_recovers(clients_edge):
    key = {"Authorization": f"Bearer {clients_edge.key}"}
    body = {"model": "local-embed", "input": "x"}
    clients_edge.backends["llamacpp-embed"].kill()
    try:
        started = time.monotonic()
        response = httpx.post(f"{clients_edge.base_url}/llm/v1/embeddings", json=body, headers=key, timeout=60)
        took = time.monotonic() - started
        assert response.status_code in (502, 503), f"a dead backend gave {response.status_code}: {response.text[:200]}"
        assert "error" in response.json() and "connection" in response.text.lower(), (
            f"the client could not tell that the backend is down: {response.text[:300]}"
        )
        assert took < 5, f"a dead backend kept the client waiting {took:.1f} s"
    finally:
        clients_edge.restart("llamacpp-embed")
    again = httpx.post(f"{clients_edge.base_url}/llm/v1/embeddings", json=body, headers=key, timeout=60)
    assert again.status_code == 200, (
        f"the restarted backend was not used at once: {again.status_code} {again.text[:200]}"
    )


def test_two_backends_one_stopped_no_request_fails_after_the_first(clients_edge):
    key = {"Authorization": f"Bearer {clients_edge.key}"}
    statuses: list[int] = []
    stop = threading.Event()

    def client() -> None:
        deadline = time.monotonic() + 30  # bounded, whatever happens to the main thread
        while not stop.is_set() and time.monotonic() < deadline:
            statuses.append(_chat(clients_edge.base_url, key).status_code)

    worker = threading.Thread(target=client, daemon=True)
    worker.start()
    try:
        # Answers are flowing before the backend stops (the first can take over a second on a busy host).
        deadline = time.monotonic() + 20
        while len(statuses) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped_at = len(statuses)
        clients_edge.backends["llamacpp-b"].kill()
        time.sleep(3.0)
    finally:
        stop.set()
        worker.join(timeout=60)
        clients_edge.restart("llamacpp-b")
    after = statuses[stopped_at:]
    assert stopped_at > 0 and len(after) >= 5, f"too few requests to tell: {stopped_at} before, {len(after)} after"
    failures = [s for s in after if s != 200]
    assert len(failures) <= 1 and all(s == 200 for s in after[1:]), (
        f"with one of two backends stopped, clients failed {len(failures)} of {len(after)} times: {after}"
    )


# ---- readiness -----------------------------------------------------------------------------------------


def test_readiness_says_ok_without_a_key_when_everything_answers(local_edge):
    response = httpx.get(f"{local_edge.base_url}/readyz", timeout=30)
    assert response.status_code == 200, f"readiness needs a key or a session: {response.status_code}"
    report = response.json()
    # The local edge points both backends at one fake: one address, one check.
    assert report == {"ready": True, "gateway": "ok", "backends": ["ok"]}, f"a healthy stack reads as {report}"


def test_readiness_reports_a_stopped_backend_without_naming_it(clients_edge):
    before = httpx.get(f"{clients_edge.base_url}/readyz", timeout=30).json()
    assert before == {"ready": True, "gateway": "ok", "backends": ["ok", "ok", "ok"]}, f"not ready at first: {before}"
    clients_edge.backends["llamacpp-b"].kill()
    try:
        response = httpx.get(f"{clients_edge.base_url}/readyz", timeout=30)
    finally:
        clients_edge.restart("llamacpp-b")
    report = response.json()
    assert report == {"ready": False, "gateway": "ok", "backends": ["ok", "failing", "ok"]}, (
        f"readiness would not show the stopped backend: {report}"
    )
    for leak in ("llamacpp", "local-chat", "127.0.0.1", str(clients_edge.upstream_ports["llamacpp-b"])):
        assert leak not in response.text, f"readiness leaks {leak!r} to anyone on the tailnet"


def test_healthz_stays_a_cheap_liveness_answer(clients_edge):
    clients_edge.backends["llamacpp-b"].kill()
    try:
        response = httpx.get(f"{clients_edge.base_url}/healthz", timeout=30)
    finally:
        clients_edge.restart("llamacpp-b")
    assert response.status_code == 200 and response.text == "ok", "liveness would depend on a backend"


# ---- browsers: sign-in redirects, identity -------------------------------------------------------------


def test_sign_in_comes_back_to_the_whole_original_uri(local_edge):
    asked = "/dash/panel?a=1&b=two%20words&c=%26"
    response = httpx.get(f"{local_edge.base_url}{asked}", timeout=30)
    assert response.status_code == 302, f"a signed-out browser got {response.status_code}"
    (rd,) = parse_qs(urlsplit(response.headers["location"]).query)["rd"]
    assert rd == f"{local_edge.base_url}{asked}", f"after sign-in the browser would land on {rd}, not {asked}"


def test_forged_identity_headers_never_reach_litellm(local_edge):
    headers = {**SPOOFED_IDENTITY, "Authorization": f"Bearer {local_edge.key}"}
    response = httpx.get(f"{local_edge.api_echo_base_url}/llm/v1/models", headers=headers, timeout=30)
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    leaked = sorted(name for name in SPOOFED_IDENTITY if name.lower() in seen)
    assert not leaked, f"the API route passed client identity headers to LiteLLM: {leaked}"
    assert seen.get("host") == f"127.0.0.1:{local_edge.api_echo_port}", (
        f"LiteLLM got Host {seen.get('host')!r}, the client's, not its own name"
    )


# ---- access log ----------------------------------------------------------------------------------------


def test_access_log_is_json_with_who_and_never_the_key_or_cookie(local_edge):
    marker = f"log-{time.monotonic_ns()}"
    key = {"Authorization": f"Bearer {local_edge.key}"}
    httpx.get(f"{local_edge.base_url}/llm/v1/models?api_key={local_edge.key}&{marker}=1", headers=key, timeout=30)
    httpx.get(f"{local_edge.base_url}/dash/{marker}", headers=SESSION, timeout=30)
    lines = access_log_lines(local_edge.log_dir / "caddy.log", marker, count=2)
    assert len(lines) == 2, f"the access log has {len(lines)} lines for 2 requests"
    api, page = sorted(lines, key=lambda e: e["request"]["uri"].startswith("/dash"))
    for entry in (api, page):
        assert entry["request"]["method"] == "GET" and entry["status"] == 200 and entry["duration"] > 0, entry
    assert api.get("client") == "master", f"the log would not say which client called the API: {api}"
    assert page.get("user") == fakes.SSO_EMAIL, f"the log would not say who signed in: {page}"
    text = (local_edge.log_dir / "caddy.log").read_text()
    assert local_edge.key not in text, "the API key is in the access log"
    assert fakes.VALID_SESSION not in text, "the session cookie is in the access log"
