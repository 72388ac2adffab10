"""The edge and LiteLLM against a hostile client, with the real Caddy and the real LiteLLM on loopback, in
both exposure modes where both apply: every header a client could send to strip or forge who it is, every
LiteLLM endpoint it could try, pages of other sites, the readiness report's sub-paths, keys in query
strings and client-address headers. Each test names what would break if it failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness import fakes
from harness.processes import EDGE_KEY
from harness.stacks import ALLOWED_ORIGIN, NODE_ADDRESS, ROOT
from policy.gateway_contract import GATEWAY_API_PATHS, READINESS_CLIENT
from tests.edge_probes import SESSION, access_log_lines

CAPABILITY = "llm.tail0a1b2c.ts.net/cap/tsllm"
EVIL_ORIGIN = "https://evil.example"

# What a client can send to make a proxy drop headers: `Connection` naming them (any case, any spacing,
# repeated), and the hop-by-hop headers that come with it.
HOP_BY_HOP_TRICKS: dict[str, list[tuple[str, str]]] = {
    "connection-names-the-client-header": [("Connection", "X-Gateway-Client")],
    "connection-names-authorization": [("Connection", "Authorization")],
    "any-case-and-spacing": [("connection", "keep-alive ,x-GATEWAY-client,\tAUTHORIZATION")],
    "two-connection-headers": [("Connection", "keep-alive"), ("Connection", "X-Gateway-Client, Authorization")],
    "every-header-the-edge-sets": [
        ("Connection", "close, X-Gateway-Client, Authorization, Host, X-Forwarded-For, X-Forwarded-Email")
    ],
    "keep-alive": [("Connection", "Keep-Alive, X-Gateway-Client"), ("Keep-Alive", "timeout=5, max=100")],
    "te-and-trailer": [("Connection", "TE, Trailer, X-Gateway-Client"), ("TE", "trailers"), ("Trailer", "X-A")],
    "upgrade": [("Connection", "Upgrade, X-Gateway-Client"), ("Upgrade", "websocket")],
    "proxy-headers": [
        ("Connection", "Proxy-Authorization, Proxy-Connection, X-Gateway-Client"),
        ("Proxy-Authorization", "Basic eDp4"),
        ("Proxy-Connection", "X-Gateway-Client"),
    ],
}


def _bearer(key: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {key}")]


def _last(server: fakes.FakeServer) -> tuple[str, str, dict[str, str], bytes]:
    method, path, headers, body = server.httpd.requests[-1]
    return method, path, {k.lower(): v for k, v in headers.items()}, body


def _from_node(method: str, url: str, headers: list[tuple[str, str]], **kwargs) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=NODE_ADDRESS), timeout=30) as client:
        return client.request(method, url, headers=headers, **kwargs)


def _serve_headers(login: str = "alice@example.com") -> list[tuple[str, str]]:
    return [("Tailscale-App-Capabilities", json.dumps({CAPABILITY: [{}]})), ("Tailscale-User-Login", login)]


# ---- who is calling: nothing a client sends removes or replaces it -------------------------------------


@pytest.mark.parametrize("trick", HOP_BY_HOP_TRICKS)
def test_no_header_a_client_sends_strips_the_identity_the_edge_gives_litellm(clients_edge, trick):
    headers = _bearer(clients_edge.client_keys["ci"]) + HOP_BY_HOP_TRICKS[trick]
    httpx.get(f"{clients_edge.echo_base_url}/llm/v1/models", headers=headers, timeout=30)
    _, _, seen, _ = _last(clients_edge.echo)
    assert seen.get("x-gateway-client") == "ci", f"with {trick}, LiteLLM would not know the client: {seen}"
    assert seen.get("authorization") == f"Bearer {EDGE_KEY}", f"with {trick}, the edge's key would not reach LiteLLM"


@pytest.mark.parametrize("trick", HOP_BY_HOP_TRICKS)
def test_no_header_a_client_sends_strips_the_identity_a_second_bearer_route_gives(clients_edge, trick):
    headers = _bearer(clients_edge.client_keys["laptop"]) + HOP_BY_HOP_TRICKS[trick]
    httpx.get(f"{clients_edge.base_url}/mcp/messages/1", headers=headers, timeout=30)
    _, _, seen, _ = _last(clients_edge.mcp)
    assert seen.get("x-gateway-client") == "laptop", f"with {trick}, the MCP server would not know the client"
    assert "authorization" not in seen, f"with {trick}, a credential reached the MCP server"


@pytest.mark.parametrize("trick", HOP_BY_HOP_TRICKS)
def test_no_header_a_client_sends_strips_a_tailnet_callers_identity(node_edge, trick):
    headers = _serve_headers() + HOP_BY_HOP_TRICKS[trick]
    _from_node("GET", f"{node_edge.echo_base_url}/tsllm/v1/models", headers)
    _, _, seen, _ = _last(node_edge.echo)
    assert seen.get("x-gateway-client") == "tailnet:alice@example.com", f"with {trick}, the caller became {seen}"


# With `Upgrade`, Caddy asks LiteLLM for a protocol switch, which LiteLLM refuses (400) on every route:
# nothing can be asked that way at all (the echo tests above show the identity holds for it too).
_ANSWERED_TRICKS = [trick for trick in HOP_BY_HOP_TRICKS if trick != "upgrade"]


@pytest.mark.parametrize("trick", _ANSWERED_TRICKS)
def test_a_client_limited_to_one_model_stays_limited_whatever_it_sends(clients_edge, trick):
    headers = _bearer(clients_edge.client_keys["ci"]) + HOP_BY_HOP_TRICKS[trick]
    listed = httpx.get(f"{clients_edge.base_url}/llm/v1/models", headers=headers, timeout=30)
    assert listed.status_code == 200, f"with {trick}, ci could not list its models: {listed.status_code}"
    assert [m["id"] for m in listed.json()["data"]] == ["local-chat"], (
        f"with {trick}, ci sees every model: it became LiteLLM's admin"
    )
    body = {"model": "local-embed", "input": "x"}
    other = httpx.post(f"{clients_edge.base_url}/llm/v1/embeddings", json=body, headers=headers, timeout=30)
    assert other.status_code == 403, f"with {trick}, ci asked for local-embed and got {other.status_code}"


@pytest.mark.parametrize(
    ("case", "names"),
    [("no client", []), ("an empty name", [""]), ("two names", ["ci", "laptop"]), ("an unknown name", ["admin"])],
)
def test_litellm_refuses_the_edges_key_without_one_known_client(clients_edge, case, names):
    headers = _bearer(EDGE_KEY) + [("X-Gateway-Client", name) for name in names]
    response = httpx.get(f"{clients_edge.litellm_url}/v1/models", headers=headers, timeout=30)
    assert response.status_code == 401, f"LiteLLM served the edge's key with {case}: {response.status_code}"


def test_the_readiness_identity_opens_nothing_but_readiness_checks(clients_edge):
    headers = _bearer(EDGE_KEY) + [("X-Gateway-Client", READINESS_CLIENT)]
    listed = httpx.get(f"{clients_edge.litellm_url}/v1/models", headers=headers, timeout=30)
    check = httpx.get(f"{clients_edge.litellm_url}/tailnet-llm-gateway/ready/0", headers=headers, timeout=30)
    posted = httpx.post(f"{clients_edge.litellm_url}/tailnet-llm-gateway/ready/0", headers=headers, timeout=30)
    assert listed.status_code == 401, f"the readiness identity listed models: {listed.status_code}"
    assert check.status_code == 200, f"the readiness identity could not ask a backend: {check.status_code}"
    assert posted.status_code in (401, 405), f"the readiness identity could POST to a backend: {posted.status_code}"


# ---- which LiteLLM endpoints a client reaches ----------------------------------------------------------

_LIST_ROUTES = """
import json
from litellm.proxy.proxy_server import app
def walk(routes, prefix=""):
    for route in routes:
        if hasattr(route, "original_router"):
            yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "path"):
            yield prefix + route.path, sorted(getattr(route, "methods", None) or ["GET"])[0]
print(json.dumps(sorted(set(walk(app.routes)))))
"""


@pytest.fixture(scope="module")
def litellm_routes(tmp_path_factory) -> list[tuple[str, str]]:
    """Every route LiteLLM's app has (path with its parameters filled in, one method), as it imports it."""
    home = tmp_path_factory.mktemp("litellm-routes")
    result = subprocess.run(
        [sys.executable, "-c", _LIST_ROUTES],
        capture_output=True,
        text=True,
        timeout=120,
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": "", "HOME": str(home)},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    routes = []
    for path, method in json.loads(result.stdout):
        filled = "/".join("x" if part.startswith("{") else part for part in path.split("/"))
        routes.append((filled, "GET" if method in ("HEAD", "OPTIONS") else method))
    assert len(routes) > 100, f"only {len(routes)} routes found: the walk no longer sees LiteLLM's routers"
    return sorted(set(routes))


def _allowed(path: str) -> bool:
    return any(path == p or (p.endswith("/*") and path.startswith(p[:-1])) for p in GATEWAY_API_PATHS)


def test_clients_reach_no_litellm_endpoint_beyond_the_api_allow_list(clients_edge, litellm_routes):
    key = dict(_bearer(clients_edge.key))
    with httpx.Client(timeout=30) as client:
        reached = [
            f"{method} {path}: {response.status_code}"
            for path, method in litellm_routes
            if not _allowed(path)
            for response in [client.request(method, f"{clients_edge.echo_base_url}/llm{path}", headers=key)]
            if response.status_code != 404 or "not_found" not in response.text
        ]
    assert not reached, f"the edge forwards LiteLLM endpoints clients do not need: {reached[:10]}"


def test_the_edges_key_opens_no_litellm_endpoint_beyond_the_api_allow_list(node_edge, litellm_routes):
    """Whatever reached LiteLLM with the edge's key and a client's name gets what a key-less request gets."""
    edge = dict(_bearer(EDGE_KEY) + [("X-Gateway-Client", "laptop")])

    def compare(route: tuple[str, str]) -> str | None:
        path, method = route
        with httpx.Client(base_url=node_edge.litellm_url, timeout=30) as client:
            anonymous = client.request(method, path).status_code
            with_key = client.request(method, path, headers=edge).status_code
        return None if with_key == anonymous or with_key in (401, 403) else f"{method} {path}: {with_key}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        opened = [found for found in pool.map(compare, [r for r in litellm_routes if not _allowed(r[0])]) if found]
    assert not opened, f"the edge's key opens LiteLLM endpoints beyond the API: {opened[:10]}"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models", None),
        ("/v1/chat/completions", {"model": "local-chat", "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"model": "local-chat", "prompt": "hi"}),
        ("/v1/embeddings", {"model": "local-embed", "input": "hi"}),
        ("/v1/messages", {"model": "local-chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/messages/count_tokens", {"model": "local-chat", "messages": [{"role": "user", "content": "hi"}]}),
    ],
)
def test_every_endpoint_api_clients_need_works_through_the_edge(clients_edge, path, body):
    assert path in GATEWAY_API_PATHS, f"{path} is tested but not allowed"
    key = dict(_bearer(clients_edge.key))
    url = f"{clients_edge.base_url}/llm{path}"
    response = httpx.get(url, headers=key, timeout=30) if body is None else httpx.post(url, json=body, headers=key)
    assert response.status_code == 200, f"clients could not use {path}: {response.status_code} {response.text[:200]}"


def test_every_allowed_endpoint_is_tested():
    tested = {"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"}
    tested.add("/v1/messages/count_tokens")
    assert set(GATEWAY_API_PATHS) == tested, "an endpoint clients may call has no live test"


def test_model_information_shows_names_never_backend_addresses(clients_edge):
    response = httpx.get(f"{clients_edge.base_url}/llm/v1/models", headers=dict(_bearer(clients_edge.key)))
    assert response.status_code == 200
    ports = [str(port) for name, port in clients_edge.upstream_ports.items() if name.startswith("llamacpp")]
    leaked = [port for port in ports if port in response.text] + [w for w in ("api_base", "http") if w in response.text]
    assert not leaked, f"the model list shows backend addresses: {leaked}"
    info = httpx.get(f"{clients_edge.base_url}/llm/v1/model/info", headers=dict(_bearer(clients_edge.key)))
    assert info.status_code == 404, f"/v1/model/info (backend addresses) answered {info.status_code}"


# ---- pages of other sites ------------------------------------------------------------------------------

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_BROWSER_FROM_ELSEWHERE = {
    "another-origin": [("Origin", EVIL_ORIGIN)],
    "opaque-origin": [("Origin", "null")],
    "cross-site-fetch-without-origin": [("Sec-Fetch-Site", "cross-site")],
    "same-site-fetch-without-origin": [("Sec-Fetch-Site", "same-site")],
    "another-origin-claiming-same-origin": [("Origin", EVIL_ORIGIN), ("Sec-Fetch-Site", "same-origin")],
}


def _text_plain(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # A "simple" request: a page may send it to any site without a preflight.
    return headers + [("Content-Type", "text/plain")]


@pytest.mark.parametrize("method", _METHODS)
@pytest.mark.parametrize("page", _BROWSER_FROM_ELSEWHERE)
def test_a_page_of_another_site_gets_nothing_done_on_a_tailnet_route(node_edge, page, method):
    before = len(node_edge.echo.httpd.requests)
    headers = _text_plain(_serve_headers() + _BROWSER_FROM_ELSEWHERE[page])
    body = '{"model":"local-chat","messages":[{"role":"user","content":"x"}]}'
    response = _from_node(method, f"{node_edge.echo_base_url}/tsllm/v1/chat/completions", headers, content=body)
    assert response.status_code == 403, f"{method} from {page} got {response.status_code}: a page could drive the API"
    assert len(node_edge.echo.httpd.requests) == before, f"{method} from {page} reached LiteLLM"


@pytest.mark.parametrize("method", _METHODS)
@pytest.mark.parametrize("page", _BROWSER_FROM_ELSEWHERE)
@pytest.mark.parametrize("route", ["/llm/v1/chat/completions", "/mcp/messages/1"])
def test_a_page_of_another_site_gets_nothing_done_on_a_bearer_route(clients_edge, route, page, method):
    upstream = clients_edge.echo if route.startswith("/llm") else clients_edge.mcp
    before = len(upstream.httpd.requests)
    headers = _text_plain(_bearer(clients_edge.key) + _BROWSER_FROM_ELSEWHERE[page])
    response = httpx.request(method, f"{clients_edge.echo_base_url}{route}", headers=headers, content="{}")
    assert response.status_code == 403, f"{method} {route} from {page} got {response.status_code}"
    assert len(upstream.httpd.requests) == before, f"{method} {route} from {page} reached its upstream"


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site"])
def test_a_page_of_an_allowed_origin_still_reaches_the_api(clients_edge, fetch_site):
    page = [("Origin", ALLOWED_ORIGIN), ("Sec-Fetch-Site", fetch_site)]
    response = httpx.get(f"{clients_edge.base_url}/llm/v1/models", headers=_bearer(clients_edge.key) + page)
    assert response.status_code == 200, f"a page of the allowed origin was refused: {response.status_code}"


# ---- readiness: fixed probes only ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/readyz", "/readyz/gateway", "/readyz/backend/0"])
def test_readiness_answers_get_only(local_edge, path, method):
    response = httpx.request(method, f"{local_edge.api_echo_base_url}{path}", content=b"{}", timeout=30)
    assert response.status_code == 405, f"{method} {path} got {response.status_code}: it would reach LiteLLM"
    assert "GET" in response.headers.get("allow", ""), "the 405 does not say what is allowed"


@pytest.mark.parametrize(
    ("path", "probe", "as_readiness"),
    [("/readyz/gateway", "/health/liveliness", False), ("/readyz/backend/0", "/tailnet-llm-gateway/ready/0", True)],
)
def test_readiness_forwards_no_query_no_body_and_no_client_credential(clients_edge, path, probe, as_readiness):
    url = f"{clients_edge.echo_base_url}{path}?api_key=sk-x&method=POST"
    headers = _bearer(clients_edge.key) + [("X-Gateway-Client", "laptop"), ("Connection", "X-Gateway-Client")]
    httpx.request("GET", url, headers=headers, content=b'{"model": "local-chat"}', timeout=30)
    method, forwarded, seen, body = _last(clients_edge.echo)
    assert (method, forwarded, body) == ("GET", probe, b""), f"the probe became {method} {forwarded} {body!r}"
    if not as_readiness:
        assert "authorization" not in seen and "x-gateway-client" not in seen, f"the liveness probe carried {seen}"
    else:
        assert seen.get("x-gateway-client") == READINESS_CLIENT, "a backend check could speak for a client"
        assert seen.get("authorization") == f"Bearer {EDGE_KEY}", "the backend check would not be accepted"


# ---- logs: no query value ------------------------------------------------------------------------------


def test_no_query_value_reaches_any_log_whatever_its_name(clients_edge):
    secrets = [f"s{n}e{id(clients_edge)}cret" for n in range(5)]
    key = dict(_bearer(clients_edge.key))
    queries = [
        f"API_KEY={secrets[0]}&code={secrets[1]}&{secrets[2]}",
        f"x=%zz{secrets[3]}&Token={secrets[4]}",
    ]
    for query in queries:
        httpx.get(f"{clients_edge.base_url}/llm/v1/models?{query}", headers=key, timeout=30)
        # The SSO service is down here: forward_auth fails, and Caddy logs an error naming the request.
        httpx.get(f"{clients_edge.base_url}/dash/x?{query}", headers=SESSION, timeout=30)
    lines = access_log_lines(clients_edge.log_dir / "caddy.log", "API_KEY&code", count=2)
    assert lines and lines[0]["request"]["uri"].endswith("?API_KEY&code&"), f"the log keeps no query names: {lines}"
    logs = (clients_edge.log_dir / "caddy.log").read_text(errors="replace")
    leaked = [s for s in secrets if s in logs]
    assert not leaked, f"query values reached Caddy's log: {leaked}"


# ---- client addresses ----------------------------------------------------------------------------------

ADDRESS_HEADERS = {
    "X-Real-IP": "6.6.6.6",
    "Forwarded": "for=6.6.6.6;proto=https",
    "True-Client-IP": "6.6.6.6",
    "X-Client-IP": "6.6.6.6",
    "CF-Connecting-IP": "6.6.6.6",
    "X-Cluster-Client-IP": "6.6.6.6",
    "Fastly-Client-IP": "6.6.6.6",
    "X-Originating-IP": "6.6.6.6",
    "X-Forwarded-For": "6.6.6.6",
}


@pytest.mark.parametrize("route", ["/dash/x", "/oauth2/x", "/llm/v1/models"])
def test_client_address_headers_are_dropped_or_overwritten(local_edge, route):
    headers = {**ADDRESS_HEADERS, **SESSION, "Authorization": f"Bearer {local_edge.key}"}
    base = local_edge.api_echo_base_url if route.startswith("/llm") else local_edge.base_url
    response = httpx.get(f"{base}{route}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text[:200]
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    forged = {name: seen[name.lower()] for name in ADDRESS_HEADERS if "6.6.6.6" in seen.get(name.lower(), "")}
    assert not forged, f"{route}: the upstream would take the client's word for its address: {forged}"
    assert seen.get("x-forwarded-for") == "127.0.0.1", f"{route}: X-Forwarded-For is not the real peer"


# LiteLLM's own control headers (its source reads these from a request): how often to retry, how long to
# wait, which tags and spend metadata to log, which model to route to.
LITELLM_CONTROL = {
    "X-Litellm-Num-Retries": "50",
    "X-Litellm-Timeout": "0.001",
    "X-Litellm-Stream-Timeout": "100000",
    "X-Litellm-Tags": "fuzz-tag",
    "X-Litellm-Model": "local-embed",
    "X-Litellm-Model-Group": "local-embed",
    "X-Litellm-Spend-Logs-Metadata": '{"a": 1}',
    "X-Litellm-Keepalive-Seconds": "100000",
    "X-Litellm-Team-Id": "admins",
    "Litellm-Trace-Id": "fuzz-trace",
    "Litellm-Disable-Message-Redaction": "true",
}


def test_no_client_sets_litellms_control_headers(clients_edge):
    headers = _bearer(clients_edge.client_keys["ci"]) + list(LITELLM_CONTROL.items())
    httpx.get(f"{clients_edge.echo_base_url}/llm/v1/models", headers=headers, timeout=30)
    _, _, seen, _ = _last(clients_edge.echo)
    reached = sorted(name for name in seen if name.startswith(("x-litellm", "litellm")))
    assert not reached, f"a client's LiteLLM control headers reached LiteLLM: {reached}"
