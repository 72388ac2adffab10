"""Live guarantees of per-client limits, metrics and usage: the real Caddy in front of two real LiteLLM
replicas (as the stack runs them), stub backends that report the usage they are told to.

Limits are counted over a minute, so each guarantee uses a client (or a tailnet login) of its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.keys import new_key
from harness.loopback import LoopbackStack, running_with_stub_backends
from harness.processes import EDGE_KEY
from harness.stacks import (
    LIMITED_REQUESTS,
    LIMITED_STREAMS,
    LIMITED_TOKENS,
    LIMITS_STACK,
    NODE_ADDRESS,
    ROOT,
    TAILNET_REQUESTS,
    WRITER_TOKENS,
    limits_stack_values,
    new_project,
)
from policy.gateway_contract import CLIENT_HEADER, LITELLM_KEY_HEADERS, MASTER_KEY_ENV
from tests.edge_probes import raw_request, refused_by_allow_list
from tests.litellm_metrics import counter_sum, series

CAPABILITY = "llm.tail0a1b2c.ts.net/cap/tsllm"
DASHBOARD = ROOT / "dashboards" / "tailnet-llm-gateway.json"


@dataclass
class LimitsEdge:
    base_url: str
    keys: dict[str, str]
    master_key: str
    # Each LiteLLM replica's metrics, and the edge's.
    metrics_urls: list[str]
    edge_metrics_url: str
    project: Path
    gateway_ports: list[int]

    def chat(self, client: str, content: str = "ping", **extra) -> httpx.Response:
        body = {"model": "local-chat", "messages": [{"role": "user", "content": content}]} | extra
        headers = {"Authorization": f"Bearer {self.keys[client]}"}
        return httpx.post(f"{self.base_url}/llm/v1/chat/completions", json=body, headers=headers, timeout=60)

    def metrics(self) -> str:
        auth = {"Authorization": f"Bearer {self.master_key}"}
        return "".join(httpx.get(url, headers=auth, timeout=10).text for url in self.metrics_urls)


@pytest.fixture(scope="module")
def limits_edge(tmp_path_factory) -> Iterator[LimitsEdge]:
    work = tmp_path_factory.mktemp("edge-limits")
    values = limits_stack_values()
    project = new_project(work / "project", LIMITS_STACK, values)
    keys = {name: new_key() for name in values["clients"]}
    stack = LoopbackStack(LIMITS_STACK, work, project, client_keys=keys, node_address=NODE_ADDRESS)
    with running_with_stub_backends(stack, ("llamacpp", "llamacpp-b", "llamacpp-embed"), replicas=2) as base_url:
        yield LimitsEdge(
            base_url=base_url,
            keys=keys,
            master_key=stack.master_key,
            metrics_urls=[f"http://127.0.0.1:{port}/metrics/" for port in stack.gateway_ports],
            gateway_ports=list(stack.gateway_ports),
            edge_metrics_url=f"http://127.0.0.1:{stack.metrics_port}/metrics",
            project=project,
        )


def _from_node(
    url: str, login: str | None, body: dict | None = None, node: str = NODE_ADDRESS, device: str | None = None
) -> httpx.Response:
    """A granted tailnet caller as the gateway's node forwards it: from its address, with serve's headers
    (a POST of `body`, or a GET). A tagged device (`login` None) comes with its address, as serve says it."""
    headers = {"Tailscale-App-Capabilities": json.dumps({CAPABILITY: [{}]}, separators=(",", ":"))}
    if login is not None:
        headers["Tailscale-User-Login"] = login
    if device is not None:
        headers["X-Forwarded-For"] = device
    with httpx.Client(transport=httpx.HTTPTransport(local_address=node), timeout=60) as client:
        return client.get(url, headers=headers) if body is None else client.post(url, json=body, headers=headers)


def _assert_limited(response: httpx.Response, kind: str, who: str) -> None:
    assert response.status_code == 429, f"{who} went past its {kind} limit: {response.status_code} {response.text}"
    retry_after = response.headers.get("retry-after", "")
    assert retry_after.isdigit() and int(retry_after) > 0, f"{who}'s 429 says no Retry-After: SDKs would retry at once"
    error = response.json()["error"]
    assert error["code"] == "429" and kind in error["message"], f"the 429 does not name the {kind} limit: {error}"


# ---- limits --------------------------------------------------------------------------------------------


def test_a_client_over_its_request_limit_gets_429_while_another_client_gets_200(limits_edge):
    for index in range(LIMITED_REQUESTS):
        response = limits_edge.chat("laptop")
        assert response.status_code == 200, f"request {index + 1} of {LIMITED_REQUESTS} was refused: {response.text}"
    _assert_limited(limits_edge.chat("laptop"), "requests", "laptop")
    assert limits_edge.chat("free").status_code == 200, "one client's limit would hold back every other client"


def test_a_request_limit_holds_whatever_the_client_puts_in_the_query_or_connection_header(limits_edge):
    """The edge sends each client to one replica by its name; a client naming itself otherwise in the query,
    or asking the proxy to drop headers, would otherwise spread its requests over the replicas' counts."""
    url = f"{limits_edge.base_url}/llm/v1/chat/completions"
    headers = {"Authorization": f"Bearer {limits_edge.keys['hostile']}", "Connection": "X-Gateway-Client"}
    body = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
    codes = [
        httpx.post(f"{url}?tlg_caller=other-{index}", json=body, headers=headers, timeout=60).status_code
        for index in range(LIMITED_REQUESTS * 2)
    ]
    assert codes.count(200) == LIMITED_REQUESTS, (
        f"a client limited to {LIMITED_REQUESTS} requests a minute got {codes.count(200)} through: {codes}"
    )


def test_a_token_limit_trips_on_the_tokens_the_backend_reported(limits_edge):
    # Small requests that report little stay under the limit; one that reports more than the rest of it
    # is answered (its size was not known before), and the next is refused.
    for _ in range(2):
        assert limits_edge.chat("ci", "usage 1 1").status_code == 200, "a small request was refused early"
    big = limits_edge.chat("ci", f"usage {LIMITED_TOKENS // 2} {LIMITED_TOKENS // 2}")
    assert big.status_code == 200, f"the request that used the limit up was refused beforehand: {big.text}"
    _assert_limited(limits_edge.chat("ci", "usage 1 1"), "tokens", "ci")
    assert limits_edge.chat("free", "usage 1 1").status_code == 200, "another client would share ci's tokens"


def test_a_concurrency_limit_holds_with_parallel_streams(limits_edge):
    stream = {"stream": True}
    with ThreadPoolExecutor(LIMITED_STREAMS) as pool:
        streams = [
            pool.submit(limits_edge.chat, "streamer", "stream 3 words", **stream) for _ in range(LIMITED_STREAMS)
        ]
        time.sleep(1.5)  # both streams are under way (each takes about 3 s)
        assert not any(s.done() for s in streams), "the streams ended too soon for the check to mean anything"
        _assert_limited(limits_edge.chat("streamer"), "max_parallel_requests", "streamer")
        answers = [s.result() for s in streams]
    for answer in answers:
        assert answer.status_code == 200 and answer.text.rstrip().endswith("data: [DONE]"), (
            f"a stream within the limit was refused or cut: {answer.status_code} {answer.text[-200:]}"
        )
    assert limits_edge.chat("streamer").status_code == 200, "the slots of finished streams were never given back"


def test_a_tailnet_login_is_limited_by_login(limits_edge):
    url = f"{limits_edge.base_url}/tsllm/v1/chat/completions"
    body = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
    for index in range(TAILNET_REQUESTS):
        response = _from_node(url, "carol@example.com", body)
        assert response.status_code == 200, f"carol's request {index + 1} was refused: {response.text}"
    _assert_limited(_from_node(url, "carol@example.com", body), "requests", "carol@example.com")
    assert _from_node(url, "dave@example.com", body).status_code == 200, (
        "tailnet logins would share one limit: one user would lock out the others"
    )


def test_each_tagged_device_is_limited_on_its_own(limits_edge):
    url = f"{limits_edge.base_url}/tsllm/v1/chat/completions"
    body = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
    for index in range(TAILNET_REQUESTS):
        response = _from_node(url, None, body, device="100.70.0.1")
        assert response.status_code == 200, f"a tagged device's request {index + 1} was refused: {response.text}"
    _assert_limited(_from_node(url, None, body, device="100.70.0.1"), "requests", "a tagged device")
    other = _from_node(url, None, body, device="100.70.0.2")
    assert other.status_code == 200, f"tagged devices share one budget: {other.status_code} {other.text}"


def test_a_token_limit_counts_what_the_backend_reported_not_an_estimate_reserved_before(limits_edge):
    """A realistic prompt without max_tokens: after a call that reported 1,800 of a 2,000-token minute, the
    next call still goes through (LiteLLM's reservation would hold back at least a quarter of the budget)."""
    context = "You are a careful assistant. " * 60  # about 360 tokens of system prompt, as clients send
    used = WRITER_TOKENS * 9 // 10

    def ask(usage: str) -> httpx.Response:
        messages = [{"role": "system", "content": context}, {"role": "user", "content": usage}]
        headers = {"Authorization": f"Bearer {limits_edge.keys['writer']}"}
        body = {"model": "local-chat", "messages": messages}
        return httpx.post(f"{limits_edge.base_url}/llm/v1/chat/completions", json=body, headers=headers, timeout=60)

    first = ask(f"usage {used // 2} {used - used // 2}")
    assert first.status_code == 200, f"the first call was refused: {first.text}"
    second = ask("usage 200 100")  # the call that uses the minute up: its size was not known before
    assert second.status_code == 200, (
        f"a client with {WRITER_TOKENS - used} of {WRITER_TOKENS} tokens left was refused early: {second.text}"
    )
    _assert_limited(ask("usage 1 1"), "tokens", "writer")


# ---- one client's broken request costs no other client anything -----------------------------------------

# Bodies a client can break: a chunk length that is not hex, a body that ends before its Content-Length.
BROKEN_BODIES = {
    "bad-chunking": ("Transfer-Encoding: chunked", b'5\r\n{"mod\r\nZZ\r\n'),
    "early-close": ("Content-Length: 400", b'{"model": "local-chat", "mess'),
}


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("body", BROKEN_BODIES)
def test_a_broken_request_body_costs_other_clients_no_time_and_its_sender_no_extra_limit(limits_edge, body, method):
    """The edge must not count a client's broken body as a replica failing: that marked every replica down,
    made other clients wait 30 s, and moved the sender to a replica with a fresh count of its limit."""
    framing, payload = BROKEN_BODIES[body]
    port = int(limits_edge.base_url.rsplit(":", 1)[1])
    key = limits_edge.keys["free"]
    with ThreadPoolExecutor(4) as pool:
        broken = [
            pool.submit(
                raw_request,
                port,
                method,
                "/llm/v1/chat/completions",
                [f"Authorization: Bearer {key}", framing],
                payload,
            )
            for _ in range(3)
        ]
        time.sleep(0.3)
        worst = 0.0
        for _ in range(6):
            started = time.monotonic()
            assert limits_edge.chat("bystander").status_code == 200, "another client's request failed"
            worst = max(worst, time.monotonic() - started)
        answers = [b.result() for b in broken]
    assert worst < 5, f"one client's broken body ({body}, {method}) made another client wait {worst:.1f} s"
    for status, seconds in answers:
        assert seconds < 5 and status not in (502, 503, 504), (
            f"a broken body ({body}, {method}) was tried on the replicas for {seconds:.1f} s and answered {status}"
        )
    for _ in range(3):
        raw_request(
            port,
            "PUT",
            "/llm/v1/chat/completions",
            [f"Authorization: Bearer {limits_edge.keys['breaker']}", framing],
            payload,
        )
    codes = [limits_edge.chat("breaker").status_code for _ in range(LIMITED_REQUESTS * 2)]
    assert codes.count(200) <= LIMITED_REQUESTS, (
        f"after broken bodies, a client limited to {LIMITED_REQUESTS} requests got {codes.count(200)} through: {codes}"
    )


def test_a_body_over_the_edges_bound_is_refused_before_any_replica(limits_edge):
    port = int(limits_edge.base_url.rsplit(":", 1)[1])
    key = limits_edge.keys["free"]
    status, _ = raw_request(
        port, "POST", "/llm/v1/chat/completions", [f"Authorization: Bearer {key}", "Content-Length: 40000000"], b"{}"
    )
    assert status == 413, f"a declared 40 MB body was not refused at the edge: {status}"


# ---- no second key chooses who the caller is -------------------------------------------------------------


@pytest.mark.parametrize("header", [h for h in LITELLM_KEY_HEADERS if h != "Authorization"])
def test_the_master_key_in_another_key_header_lifts_no_clients_limits(limits_edge, header):
    """LiteLLM takes x-litellm-api-key (and others) over Authorization: a client's key plus the master key there
    must not make the client the admin (ci may use local-chat only)."""
    headers = {"Authorization": f"Bearer {limits_edge.keys['ci']}", header: limits_edge.master_key}
    body = {"model": "local-embed", "messages": [{"role": "user", "content": "ping"}]}
    response = httpx.post(f"{limits_edge.base_url}/llm/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert response.status_code in (401, 403), (
        f"{header} with the master key lifted ci's model list: {response.status_code}"
    )


@pytest.mark.parametrize("header", [h for h in LITELLM_KEY_HEADERS if h != "Authorization"])
def test_litellm_refuses_a_forwarded_request_whose_key_headers_disagree(limits_edge, header):
    """Behind the edge too: the edge's key in Authorization and the master key in another header is refused."""
    headers = {"Authorization": f"Bearer {EDGE_KEY}", CLIENT_HEADER: "ci", header: limits_edge.master_key}
    url = f"http://127.0.0.1:{limits_edge.gateway_ports[0]}/v1/models"
    response = httpx.get(url, headers=headers, timeout=30)
    assert response.status_code == 401, (
        f"LiteLLM took the master key from {header} over the edge's: {response.status_code}"
    )


# ---- metrics and usage ---------------------------------------------------------------------------------

METER_CALLS = ((7, 11), (5, 13), (9, 2))


@pytest.fixture(scope="module")
def metered(limits_edge) -> LimitsEdge:
    """The meter client's calls, each reporting the usage it asked for."""
    for prompt, completion in METER_CALLS:
        assert limits_edge.chat("meter", f"usage {prompt} {completion}").status_code == 200
    return limits_edge


def test_token_counts_in_the_metrics_equal_what_the_backends_reported_per_client(metered):
    text = metered.metrics()
    prompt, completion = (sum(call[i] for call in METER_CALLS) for i in (0, 1))
    seen_in, seen_out = (
        counter_sum(text, f"litellm_{kind}_tokens_metric", user="meter") for kind in ("input", "output")
    )
    assert (seen_in, seen_out) == (prompt, completion), (
        f"the metrics count meter's tokens as {seen_in}/{seen_out}, the backends reported {prompt}/{completion}"
    )
    requests = counter_sum(text, "litellm_proxy_total_requests_metric", user="meter")
    assert requests == len(METER_CALLS), f"the metrics count {requests} requests of meter's {len(METER_CALLS)}"


def test_no_key_is_ever_a_metric_label_wherever_a_client_puts_it(metered):
    """Keys placed in everything a client writes that LiteLLM might label (the model, the body's user, the
    User-Agent, tags) never show in the metrics."""
    keys = {"edge": EDGE_KEY, "master": metered.master_key, **metered.keys}
    for key in keys.values():
        tags = {"metadata": {"tags": [key]}, "tags": [key]}
        metered.chat("free", user=key, **tags)
        metered.chat("free", model=key)
        headers = {"Authorization": f"Bearer {metered.keys['free']}", "User-Agent": key}
        body = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
        httpx.post(f"{metered.base_url}/llm/v1/chat/completions", json=body, headers=headers, timeout=60)
    text = metered.metrics()
    for name, key in keys.items():
        assert key not in text, f"the {name} key is in LiteLLM's metrics: anyone reading them could use it"
    assert counter_sum(text, "litellm_proxy_total_requests_metric", hashed_api_key="meter") > 0, (
        "the caller's name is not where the key used to be: the check above proves nothing"
    )


def test_clients_cannot_grow_the_metrics(limits_edge):
    """Made-up model names, User-Agents and body `user` values, also from a client already at its limit, add no
    series: each would otherwise be a label, and /metrics would grow without bound. A first round makes every
    series an honest request has (both backends, the limit's 429); a second round with new values must add none."""

    def made_up_round(prefix: str) -> None:
        for index in range(40):
            client = "free" if index % 2 else "hostile"
            word = f"{prefix}-{index}"
            headers = {"Authorization": f"Bearer {limits_edge.keys[client]}", "User-Agent": word}
            for body in (
                {"model": word, "messages": [{"role": "user", "content": "ping"}]},
                {"model": "local-chat", "user": word, "messages": [{"role": "user", "content": "ping"}]},
                # LiteLLM refuses a body that sets api_base before any auth runs, and counted it under its model.
                {"model": word, "api_base": "http://127.0.0.1:9/v1", "messages": [{"role": "user", "content": "ping"}]},
            ):
                httpx.post(f"{limits_edge.base_url}/llm/v1/chat/completions", json=body, headers=headers, timeout=60)

    made_up_round("made-up-a")
    before = series(limits_edge.metrics())
    made_up_round("made-up-b")
    text = limits_edge.metrics()
    grown = series(text) - before
    odd = [line[:200] for line in text.splitlines() if "made-up-" in line and not line.startswith("#")]
    assert "made-up-" not in text, f"a client's made-up string became a metric label: {odd[:6]}"
    assert len(grown) < 5, (
        f"40 made-up values added {len(grown)} series: clients can grow the metrics: {sorted(grown)[:2]}"
    )


def _usage(limits_edge: LimitsEdge, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tailnet_llm_gateway", "usage", *args]
    for url in limits_edge.metrics_urls:
        argv += ["--url", url]
    env = {**os.environ, MASTER_KEY_ENV: limits_edge.master_key}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def test_usage_prints_per_client_and_model_what_the_backends_reported(metered):
    text = metered.metrics()
    result = _usage(metered, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {(row["caller"], row["model"]): row for row in json.loads(result.stdout)["usage"]}
    meter = rows[("meter", "local-chat")]
    reported = tuple(sum(call[i] for call in METER_CALLS) for i in (0, 1))
    assert (meter["input_tokens"], meter["output_tokens"]) == reported, (
        f"usage says meter used {meter}, the backends reported {reported}"
    )
    assert meter["requests"] == len(METER_CALLS) and meter["errors"] == 0, f"usage miscounts meter's requests: {meter}"
    assert counter_sum(text, "litellm_input_tokens_metric", user="meter") == reported[0], (
        "usage and the metrics disagree"
    )
    table = _usage(metered)
    assert table.returncode == 0 and re.search(r"^meter\s+local-chat\s+\d+", table.stdout, re.M), (
        f"the table has no row for meter and local-chat:\n{table.stdout}"
    )


def test_usage_over_a_period_counts_only_what_happened_in_it(metered):
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(_usage, metered, "--format", "json", "--period", "4")
        time.sleep(1.5)
        assert metered.chat("free", "usage 3 4").status_code == 200
        result = running.result()
    assert result.returncode == 0, result.stderr
    rows = {(row["caller"], row["model"]): row for row in json.loads(result.stdout)["usage"]}
    assert rows.get(("free", "local-chat"), {}).get("input_tokens") == 3, f"the period's usage is wrong: {rows}"
    assert ("meter", "local-chat") not in rows, "usage over a period counted what came before it"


def test_usage_without_the_master_key_says_so_in_one_line(metered):
    env = {k: v for k, v in os.environ.items() if k != MASTER_KEY_ENV}
    argv = [sys.executable, "-m", "tailnet_llm_gateway", "usage", "--url", metered.metrics_urls[0]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 2 and MASTER_KEY_ENV in result.stderr and "Traceback" not in result.stderr, (
        result.stderr
    )


def test_litellm_metrics_need_the_master_key(limits_edge):
    url = limits_edge.metrics_urls[0]
    for headers in ({}, {"Authorization": f"Bearer {EDGE_KEY}", "X-Gateway-Client": "laptop"}):
        response = httpx.get(url, headers=headers, timeout=10)
        assert response.status_code == 401 and "# TYPE" not in response.text, (
            f"LiteLLM's metrics answered {response.status_code} without the master key ({sorted(headers)})"
        )


def test_every_metric_the_dashboard_queries_is_in_the_live_output(metered):
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:litellm|caddy)_[a-z0-9_]+", target["expr"])
    }
    # A refused request (ci may not use local-embed), so the failure counters exist.
    refused = metered.chat("ci", model="local-embed")
    assert refused.status_code in (401, 403), f"ci used a model it may not: {refused.status_code}"
    live = metered.metrics() + httpx.get(metered.edge_metrics_url, timeout=10).text
    names = {sample.name for family in text_string_to_metric_families(live) for sample in family.samples}
    missing = sorted(queried - names)
    assert queried and not missing, f"the dashboard queries metrics nothing serves: {missing}"


# ---- metrics through the edge (both exposure modes) ------------------------------------------------------

METRICS_PATHS = (
    "/metrics",
    "/metrics/",
    "/llm/metrics",
    "/llm/metrics/",
    "/llm/v1/metrics",
    "/llm/%2e%2e/metrics",
    "/llm//metrics",
    "/mcp/metrics",
    "/tsllm/metrics",
    "/tsllm/metrics/",
)


# Paths under an API route reach LiteLLM's side of the edge; the others take the catch-all route.
API_METRICS_PATHS = tuple(
    path for path in METRICS_PATHS if path.startswith(("/llm/", "/mcp/", "/tsllm/")) and "%2e" not in path
)


@pytest.mark.parametrize("path", METRICS_PATHS)
def test_metrics_are_not_reachable_through_the_edge_with_or_without_a_key(clients_edge, path):
    keys = {"no key": None, "a client's key": clients_edge.key, "the master key": clients_edge.master_key}
    for who, key in keys.items():
        # The master key also in LiteLLM's own key header, which it prefers over Authorization.
        headers = {"Authorization": f"Bearer {key}", "X-Litellm-Api-Key": clients_edge.master_key} if key else {}
        url = httpx.URL(clients_edge.base_url).copy_with(raw_path=path.encode())
        response = httpx.get(url, headers=headers, timeout=30)
        assert "# TYPE" not in response.text and "litellm_" not in response.text, (
            f"{path} with {who} served metrics through the edge ({clients_edge.base}): anyone on the tailnet "
            "could read every client's usage"
        )
        has_route = clients_edge.node_address is not None or not path.startswith("/tsllm")
        if path in API_METRICS_PATHS and key is not None and has_route:
            assert refused_by_allow_list(response), (
                f"{path} with {who} passed the edge's own allow-list: {response.status_code} {response.text}"
            )
    if clients_edge.node_address is not None and path.startswith("/tsllm"):
        response = _from_node(f"{clients_edge.base_url}{path}", "alice@example.com", node=clients_edge.node_address)
        assert response.status_code == 404 and "# TYPE" not in response.text, (
            f"a granted tailnet caller read the metrics at {path}: {response.status_code}"
        )
