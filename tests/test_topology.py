"""Guarantees of the topology: it knows who is on which network and who needs whom."""

from __future__ import annotations

from tailnet_llm_gateway.addresses import HostPort
from tailnet_llm_gateway.local_mode import LocalMode, with_overrides


def test_every_edge_upstream_shares_a_network_with_the_edge(dev_topology):
    names = {s.name for s in dev_topology.edge_upstreams}
    assert names == {"oauth2-proxy", "model-gateway", "dashboard", "open-webui"}, "the Caddyfile names other services"
    for service in dev_topology.edge_upstreams:
        assert dev_topology.edge_network in service.networks, f"Caddy could not resolve {service.name}"


def test_every_model_backend_is_reachable_from_the_gateway(dev_topology):
    gateway_nets = set(dev_topology.gateway_networks)
    for model in dev_topology.models:
        for backend in model.backends:
            assert gateway_nets & set(backend.service.networks), f"LiteLLM could not reach {backend.service.name}"


def test_models_map_to_their_backends(dev_topology):
    assert {m.name: m.api_base for m in dev_topology.models} == {
        "local-chat": "http://llamacpp:8080/v1",
        "local-embed": "http://llamacpp-embed:8080/v1",
    }, "models would go to other backends"


def test_client_urls_follow_the_routes(dev_topology):
    assert dev_topology.api_base_url == "https://gpu-box.tail0a1b2c.ts.net/llm/v1", "clients would get a wrong base URL"
    assert dev_topology.local_api_url == "http://127.0.0.1:11435/v1", "host apps would lose localhost:11435"


def test_gateway_is_on_the_networks_the_settings_say(dev_topology):
    assert dev_topology.gateway.service.name == "model-gateway", "the gateway is not the settings' service"
    assert set(dev_topology.gateway_networks) == {"frontend", "backend", "proxy-net"}, (
        "the gateway would join other networks than the settings say"
    )


def test_override_moves_a_backend_for_litellm_too(dev_topology):
    moved = with_overrides(dev_topology, LocalMode({"llamacpp": HostPort("127.0.0.1", 9001)}))
    assert {m.name: m.api_base for m in moved.models}["local-chat"] == "http://127.0.0.1:9001/v1", (
        "an override did not move the backend for LiteLLM"
    )
    assert moved.models[1].api_base == "http://llamacpp-embed:8080/v1", "an override leaked onto another service"


def test_routes_are_in_caddys_handle_order(dev_topology):
    assert [r.path for r in dev_topology.routes] == ["/healthz", "/oauth2/*", "/dash/*", "/llm/*", "/*"], (
        "the routes are not in the order Caddy tries them"
    )
