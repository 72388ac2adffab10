"""Guarantees of per-caller limits and metrics before anything runs: the settings, the limit table the
custom auth reads, the edge's routing to replicas, LiteLLM's metrics settings and where metrics are served.
(The live behaviour is in tests/test_live_limits.py.)"""

from __future__ import annotations

import pytest

from harness.program_run import run_program
from harness.stacks import CLIENTS_STACK, LIMITS_STACK, clients_stack_values, limits_stack_values, stack_values
from tailnet_llm_gateway.render.caddyfile.render import render_caddyfile
from tailnet_llm_gateway.render.gateway_auth import gateway_limits
from tailnet_llm_gateway.render.litellm_config import litellm_config
from tailnet_llm_gateway.render.tailscale_serve import render_serve_config
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import EDGE_METRICS_PORT, build_topology
from tailnet_llm_gateway.usage import parse_metrics, render_usage
from tests.caddy_json import adapt, site_blocks


def _topology(values: dict):
    return build_topology(Settings.from_mapping(values))


def test_a_clients_own_limits_override_the_default_field_by_field():
    values = clients_stack_values()
    values["limits"] = {"clients": {"requestsPerMinute": 60, "tokensPerMinute": 10000}}
    values["clients"]["ci"]["limits"] = {"requestsPerMinute": 5, "concurrent": 1}
    limits = gateway_limits(_topology(values))["clients"]
    assert limits["ci"] == {"rpm_limit": 5, "tpm_limit": 10000, "max_parallel_requests": 1}, (
        f"ci's own limits did not take precedence over the default, field by field: {limits['ci']}"
    )
    assert limits["laptop"] == {"rpm_limit": 60, "tpm_limit": 10000}, "a client without limits missed the default"


def test_without_named_clients_the_master_key_client_gets_the_default_limits():
    values = stack_values("dev")
    values["limits"] = {"clients": {"concurrent": 4}}
    assert gateway_limits(_topology(values))["clients"] == {"master": {"max_parallel_requests": 4}}, (
        "the one client of a stack without clients would be unlimited"
    )


def test_each_tailnet_login_gets_the_tailnet_limits():
    limits = gateway_limits(_topology(limits_stack_values()))
    assert limits["tailnet"] == {"rpm_limit": 2}, f"tailnet logins would not be limited: {limits['tailnet']}"


def test_no_limits_by_default():
    topology = _topology(stack_values("dev"))
    assert not topology.limited and gateway_limits(topology) == {"clients": {}, "tailnet": {}}, (
        "a stack that sets no limits would refuse requests"
    )


def _gateway_proxies(caddyfile: str, work) -> list:
    blocks = site_blocks(adapt(caddyfile, work))
    return [
        (block, step)
        for block in blocks
        for step in block.steps
        if step.kind == "reverse_proxy" and len(step.upstreams) > 1 and "rewrite" not in step.handler
    ]


def test_with_limits_the_edge_sends_each_caller_to_one_replica_by_a_name_it_sets(tmp_path):
    topology = _topology(limits_stack_values())
    proxies = _gateway_proxies(render_caddyfile(topology, LIMITS_STACK), tmp_path)
    assert len(proxies) == 2, "expected the /llm/* and /tsllm/* routes to LiteLLM's replicas"
    for block, step in proxies:
        selection = step.handler["load_balancing"]["selection_policy"]
        assert selection == {"policy": "query", "key": "tlg_caller", "fallback": {"policy": "least_conn"}}, (
            f"{block.path}: each replica would count a share of a caller's requests: {selection}"
        )
        rewrites = [s for s in block.steps[: block.steps.index(step)] if s.kind == "rewrite"]
        assert any(
            q.get("key") == "tlg_caller" and q.get("val") == "{http.vars.client}"
            for s in rewrites
            for q in s.handler.get("query", {}).get("set", [])
        ), f"{block.path}: the edge does not set the caller's name before choosing a replica (a client could)"


def test_without_limits_the_edge_balances_by_requests_in_flight(tmp_path):
    proxies = _gateway_proxies(render_caddyfile(_topology(clients_stack_values()), CLIENTS_STACK), tmp_path)
    assert proxies and all(
        step.handler["load_balancing"]["selection_policy"] == {"policy": "least_conn"} for _, step in proxies
    ), "without limits, one busy replica would take requests the idle one could serve"


def test_litellm_serves_prometheus_metrics_behind_the_master_key_unless_turned_off():
    settings = litellm_config(_topology(stack_values("dev")))["litellm_settings"]
    assert settings["callbacks"] == ["prometheus"] and settings["require_auth_for_metrics_endpoint"] is True, (
        "LiteLLM would serve no metrics, or serve them to anyone who can reach it"
    )
    values = stack_values("dev")
    values["gateway"]["metrics"] = False
    off = litellm_config(_topology(values))["litellm_settings"]
    assert "callbacks" not in off, "metrics turned off would still be collected"


@pytest.mark.parametrize("stack", ["dev", "dev-node"])
def test_the_edge_metrics_listener_is_on_its_container_network_and_never_published(stack):
    run = run_program(stack_values(stack), stack=stack)
    topology = _topology(stack_values(stack))
    caddyfile = render_caddyfile(topology, stack)
    assert f"http://:{EDGE_METRICS_PORT} {{" in caddyfile, "the edge would serve no metrics"
    for name, container in run.containers.items():
        published = [p["internal"] for p in container.inputs.get("ports") or []]
        assert EDGE_METRICS_PORT not in published, f"{name} would publish the edge's metrics on the host"
    if topology.node is not None:
        assert str(EDGE_METRICS_PORT) not in render_serve_config(topology), "the node would serve the metrics"


# As LiteLLM 1.98.1 writes them (prometheus_client 0.20.0): `_total` counters, `_created` as gauges.
METRICS = """\
# TYPE litellm_input_tokens_metric_total counter
litellm_input_tokens_metric_total{user="laptop",requested_model="local-chat",model_id="a"} 5.0
litellm_input_tokens_metric_total{user="laptop",requested_model="local-chat",model_id="b"} 2.0
# TYPE litellm_input_tokens_metric_created gauge
litellm_input_tokens_metric_created{user="laptop",requested_model="local-chat",model_id="a"} 1.7e9
# TYPE litellm_proxy_failed_requests_metric_total counter
litellm_proxy_failed_requests_metric_total{user="laptop",requested_model="local-chat",exception_status="429"} 3.0
litellm_proxy_failed_requests_metric_total{user="laptop",requested_model="local-chat",exception_status="500"} 1.0
"""


def test_usage_sums_a_callers_backends_and_counts_limit_hits_among_errors():
    (row,) = parse_metrics(METRICS).values()
    assert (row.caller, row.model, row.input_tokens) == ("laptop", "local-chat", 7), f"tokens were lost: {row}"
    assert (row.errors, row.limited) == (4, 3), f"errors or limit hits miscounted: {row}"
    assert "laptop  local-chat" in render_usage({("laptop", "local-chat"): row}, "table", "x"), "no table row"
