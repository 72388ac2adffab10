"""Guarantees of the rendered Caddyfile: routing read from Caddy's own JSON (`caddy adapt`), the rest from
the text, and every variant checked by the real `caddy validate`."""

from __future__ import annotations

import re

import pytest

from harness.processes import binary
from policy.gateway_contract import CLIENT_HEADER, GATEWAY_API_PATHS, markers
from tailnet_llm_gateway.addresses import HostPort
from tailnet_llm_gateway.images import CADDY_VERSION
from tailnet_llm_gateway.local_mode import LocalMode, with_overrides
from tailnet_llm_gateway.render.caddyfile.logs import QUERY_NAMES_ONLY, QUERY_VALUES
from tailnet_llm_gateway.render.caddyfile.render import render_caddyfile
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import READINESS_PATH, build_topology
from tests.caddy_check import caddy_validate
from tests.caddy_json import Block, adapt, site_blocks

KEY = markers.KEY_VAR_PREFIX
EDGE = markers.EDGE_KEY_VAR


@pytest.fixture
def caddyfile(dev_topology) -> str:
    return render_caddyfile(dev_topology, "dev")


@pytest.fixture
def blocks(caddyfile, tmp_path) -> dict[str | None, Block]:
    """The site's handle blocks as Caddy runs them, by path (None: the catch-all)."""
    return {block.path: block for block in site_blocks(adapt(caddyfile, tmp_path))}


def test_caddy_binary_matches_the_deployed_caddy_version():
    import subprocess

    version = subprocess.run([str(binary("caddy")), "version"], capture_output=True, text=True, timeout=30).stdout
    assert version.startswith(f"v{CADDY_VERSION} "), f"tests run Caddy {version!r}, the stack deploys {CADDY_VERSION}"


def test_rendering_is_byte_for_byte_deterministic(dev_values):
    first = render_caddyfile(build_topology(Settings.from_mapping(dev_values)), "dev")
    dev_values["services"] = dict(reversed(list(dev_values["services"].items())))
    dev_values["routes"] = list(reversed(dev_values["routes"]))
    second = render_caddyfile(build_topology(Settings.from_mapping(dev_values)), "dev")
    assert first == second, "the same settings in another order would change the Caddyfile and replace Caddy"


def test_dev_caddyfile_passes_caddy_validate(caddyfile, tmp_path):
    result = caddy_validate(caddyfile, tmp_path)
    assert result.returncode == 0, f"Caddy would refuse the dev Caddyfile:\n{result.stderr[-2000:]}"


def test_listen_variant_passes_caddy_validate(dev_topology, tmp_path):
    local = with_overrides(
        dev_topology, LocalMode({"llamacpp": HostPort("127.0.0.1", 9)}, HostPort("127.0.0.1", 18080))
    )
    text = render_caddyfile(local, "dev")
    assert "tls " not in text and "http://127.0.0.1:18080 {" in text, "--listen must serve plain HTTP locally"
    result = caddy_validate(text, tmp_path)
    assert result.returncode == 0, f"Caddy would refuse the --listen Caddyfile:\n{result.stderr[-2000:]}"


def test_edge_case_stack_passes_caddy_validate(dev_values, tmp_path):
    """No SSO routes, an IPv6 tailnet address, custom allowed API paths, no stripping."""
    dev_values["tailnetIp"] = "fd7a:115c:a1e0::42"
    dev_values["routes"] = [
        {"path": "/healthz", "respond": "ok", "auth": "none"},
        {
            "path": "/v1/*",
            "upstream": "model-gateway",
            "auth": "bearer",
            "allowPaths": ["/v1/models", "/v1/embeddings"],
        },
    ]
    text = render_caddyfile(build_topology(Settings.from_mapping(dev_values)), "edge")
    assert "forward_auth" not in text and f"({markers.SSO_SNIPPET})" not in text, "an unused SSO snippet was rendered"
    result = caddy_validate(text, tmp_path)
    assert result.returncode == 0, f"Caddy would refuse the edge-case Caddyfile:\n{result.stderr[-2000:]}"


def test_site_is_the_tailnet_name_with_the_mounted_tailscale_cert(caddyfile):
    assert "https://gpu-box.tail0a1b2c.ts.net:8443 {" in caddyfile, "the site would not answer to the tailnet name"
    assert "tls /etc/caddy/certs/tailnet.crt /etc/caddy/certs/tailnet.key" in caddyfile, (
        "TLS would not use Tailscale's cert"
    )
    assert "auto_https off" in caddyfile, "Caddy would try ACME for a tailnet name"


def test_llm_route_strips_the_prefix_without_sso(blocks):
    block = blocks["/llm/*"]
    assert "forward_auth" not in block.kinds(), "API clients would be redirected to SSO"
    assert block.steps[0].kind == "rewrite" and block.steps[0].handler["strip_path_prefix"] == "/llm", (
        "LiteLLM would see /llm/v1/... instead of /v1/..."
    )
    assert block.steps[-1].kind == "reverse_proxy" and block.steps[-1].upstreams == [
        "model-gateway:11435",
        "model-gateway-2:11435",
    ], "/llm/* would not reach LiteLLM"


def test_llm_route_forwards_only_the_openai_api(blocks):
    block = blocks["/llm/*"]
    allowed = {"not": [{"path": list(GATEWAY_API_PATHS)}]}
    not_api = [s for s in block.steps if s.kind == "static_response" and allowed in s.matchers]
    assert not_api and not_api[0].handler["status_code"] == 404, (
        "LiteLLM's docs, admin UI and openapi.json would be reachable without a key"
    )
    assert block.steps.index(not_api[0]) < block.first("reverse_proxy"), (
        "a key-less LiteLLM page could be proxied before the 404"
    )


def test_llm_route_checks_the_key_and_fails_closed(blocks):
    block = blocks["/llm/*"]
    answers = [s for s in block.steps if s.kind in ("static_response", "reverse_proxy")]
    (no_key,) = answers[0].matchers
    assert answers[0].handler.get("status_code") == 503 and no_key["expression"]["expr"] == (
        f"{{http.vars.{EDGE}}} == '' || ({{http.vars.{KEY}master}} == '')"
    ), "an empty key (every client's, or the edge's) would turn the bearer route into an open one"
    before = block.steps[: block.steps.index(answers[0])]
    loads = {k: v for s in before if s.kind == "vars" for k, v in s.handler.items() if k.startswith(KEY)}
    assert loads == {f"{KEY}master": "{file./etc/caddy/keys/master}", EDGE: "{file./etc/caddy/keys/edge}"}, (
        f"the route would not read its keys from the edge's key files: {loads}"
    )
    refusals = [s for s in answers if {"vars": {markers.CLIENT_VAR: [""]}} in s.matchers]
    assert refusals and refusals[0].handler["status_code"] == 401, "a request naming no client would not be refused"
    assert answers[-1].kind == "reverse_proxy" and not answers[-1].matchers, (
        "a request could reach LiteLLM before the key check"
    )
    assert block.steps.index(refusals[0]) < block.steps.index(answers[-1]), "LiteLLM would be asked before the check"


def test_a_client_is_named_only_by_the_exact_key_in_every_header_it_filled(blocks):
    """The expression compares placeholders as strings, so a key full of regex or CEL characters still
    matches only itself; a header left empty is skipped, two different keys match nothing."""
    namings = [s for s in blocks["/llm/*"].steps if s.kind == "vars" and "client" in s.handler]
    assert len(namings) == 1, "the route would name its client in more than one place"
    (matcher,) = namings[0].matchers
    expression = matcher["expression"]["expr"]
    for source in ("{bearer_key}", "{http.request.header.X-Api-Key}", "{http.request.header.Api-Key}"):
        assert f"({source} == '' || {source} == {{http.vars.key_master}})" in expression, (
            f"a key in {source} would not be compared, or compared loosely: {expression}"
        )
    assert expression.startswith("{http.vars.key_master} != ''"), "an empty key would name a client"
    assert expression.endswith("!= ''"), "a request with no key at all would name a client"


def test_the_bearer_scheme_is_read_in_any_case(blocks):
    (mapping,) = [s for s in blocks["/llm/*"].steps if s.kind == "map"]
    assert mapping.handler["source"] == "{http.request.header.Authorization}", "the key would be read elsewhere"
    assert mapping.handler["mappings"] == [{"input_regexp": "(?i)^bearer\\s+(.+)$", "outputs": ["${1}"]}], (
        "`bearer` or `BEARER` (the scheme is case-insensitive, RFC 9110) would not be accepted"
    )


def test_litellm_gets_the_edges_key_and_the_client_on_the_proxied_request_and_no_client_key(blocks):
    block = blocks["/llm/*"]
    proxy = block.steps[-1]
    assert proxy.kind == "reverse_proxy", "the block does not end in its proxy"
    assert proxy.set_up() == {
        "Authorization": [f"Bearer {{http.vars.{EDGE}}}"],
        CLIENT_HEADER: [f"{{http.vars.{markers.CLIENT_VAR}}}"],
        "Host": ["{http.reverse_proxy.upstream.hostport}"],
    }, "LiteLLM would not get the edge's key and the client's name where no client header can remove them"
    deleted = block.deleted_request_headers()
    assert {"Authorization", "X-Api-Key", "Api-Key"} <= deleted, "a copy of the client's key would reach LiteLLM"


def test_only_a_cors_preflight_from_an_allowed_origin_skips_the_key(dev_values, tmp_path):
    dev_values["routes"][2]["corsOrigins"] = ["https://chat.example.com"]
    text = render_caddyfile(build_topology(Settings.from_mapping(dev_values)), "dev")
    block = {b.path: b for b in site_blocks(adapt(text, tmp_path))}["/llm/*"]
    refusal = next(i for i, s in enumerate(block.steps) if {"vars": {"client": [""]}} in s.matchers)
    early = [s for s in block.steps[:refusal] if s.kind == "static_response" and s.handler["status_code"] < 400]
    assert len(early) == 1 and early[0].handler["status_code"] == 204, f"something else skips the key: {early}"
    (preflight,) = early[0].matchers
    assert preflight["method"] == ["OPTIONS"] and preflight["header"]["Origin"] == ["https://chat.example.com"], (
        "a request that is not a preflight from the allowed origin would skip the key"
    )
    assert "Access-Control-Request-Method" in preflight["header"], "a plain OPTIONS request would skip the key"


def test_no_cors_answer_without_allowed_origins(caddyfile):
    assert "OPTIONS" not in caddyfile and "Access-Control-Allow-Origin {" not in caddyfile, (
        "a stack with no allowed origins would answer preflights"
    )
    assert "header_down -Access-Control-Allow-Origin" in caddyfile, "LiteLLM's `*` would reach every page"


def test_readiness_answers_without_sso_and_asks_only_the_gateway(blocks, dev_topology):
    readiness = {path: block for path, block in blocks.items() if path and path.startswith(READINESS_PATH)}
    expected = {READINESS_PATH, f"{READINESS_PATH}/gateway"}
    expected |= {f"{READINESS_PATH}/backend/{i}" for i in range(len(dev_topology.readiness_backends))}
    assert set(readiness) == expected, f"readiness blocks: {sorted(readiness)}"
    for path, block in readiness.items():
        assert "forward_auth" not in block.kinds(), f"{path} would need a session"
        for step in block.steps:
            assert step.upstreams in ([], list(dev_topology.gateway.addresses)), (
                f"{path} would reach {step.upstreams}, not only LiteLLM"
            )


@pytest.mark.parametrize("logger", ["access", "default"])
def test_logs_keep_no_header_and_no_query_value(caddyfile, tmp_path, logger):
    """The access log, and Caddy's own log, where errors name the request they failed."""
    config = adapt(caddyfile, tmp_path)
    (log,) = [v for k, v in config["logging"]["logs"].items() if (k == "default") == (logger == "default")]
    fields = log["encoder"]["fields"]
    assert log["encoder"]["wrap"]["format"] == "json", f"{logger} log lines would not be JSON"
    assert fields["request>headers"] == {"filter": "delete"}, f"keys and cookies would be in the {logger} log"
    assert fields["resp_headers"] == {"filter": "delete"}, f"Set-Cookie would be in the {logger} log"
    assert fields["request>uri"] == {"filter": "regexp", "regexp": QUERY_VALUES, "value": QUERY_NAMES_ONLY}, (
        f"a key passed in the query would be in the {logger} log"
    )


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        ("/v1/models?api_key=sk-1&API_KEY=sk-2&code=c&sk-3", "/v1/models?api_key&API_KEY&code&"),
        ("/v1/models?x=%zz&=sk-4&y", "/v1/models?x&&"),
        ("/v1/models", "/v1/models"),
    ],
)
def test_the_log_filter_keeps_query_names_and_drops_every_value(uri, logged):
    # Go's regexp (RE2) and Python's agree on this pattern: no look-around, no back-references.
    assert re.sub(QUERY_VALUES, lambda m: m.group(1) + (m.group(2) or ""), uri) == logged


def test_every_path_not_declared_as_bypass_runs_forward_auth(blocks, dev_topology):
    for route in dev_topology.routes:
        block = blocks[None if route.is_catch_all else route.path]
        has_sso = "forward_auth" in block.kinds()
        assert has_sso == (route.auth == "sso"), (
            f"{route.path} ({route.auth}) would {'skip' if route.auth == 'sso' else 'need'} SSO"
        )


def test_caddy_tries_the_blocks_in_the_topologys_order(caddyfile, dev_topology, tmp_path):
    # The readiness blocks are the edge's own; no route can meet them (a settings check).
    order = [b.path for b in site_blocks(adapt(caddyfile, tmp_path)) if not (b.path or "").startswith(READINESS_PATH)]
    assert order == [None if r.is_catch_all else r.path for r in dev_topology.routes], (
        "Caddy would try the routes in another order than the settings check assumed"
    )


def test_sso_401_becomes_a_302_to_the_start_url_with_the_original_url(caddyfile):
    assert "@unauthenticated status 401" in caddyfile, "an SSO refusal would not become a sign-in redirect"
    assert (
        "redir * {scheme}://{hostport}/oauth2/start?rd={scheme}://{hostport}{http.request.uri_escaped} 302" in caddyfile
    ), "a signed-out browser would not come back to the page it asked for"


def test_client_identity_headers_are_stripped_on_every_proxied_route(blocks):
    for path, block in blocks.items():
        if "reverse_proxy" in block.kinds():
            deleted = block.deleted_request_headers()
            for name in ("X-Forwarded-Email", "X-Forwarded-User", "X-Auth-Request-*", "Remote-*"):
                assert name in deleted, f"{path}: {name} from a client would reach the upstream"


def test_identity_strip_runs_before_forward_auth(blocks):
    for path, block in blocks.items():
        if "forward_auth" in block.kinds():
            assert block.first("headers") < block.first("forward_auth"), (
                f"{path}: stripping after forward_auth would delete the SSO's own identity headers"
            )


def test_protected_prefix_is_stripped_after_sso(blocks):
    block = blocks["/dash/*"]
    assert block.first("forward_auth") < block.first("rewrite") < block.first("reverse_proxy"), (
        "the sign-in redirect would lose the /dash prefix, or the prefix would reach the dashboard"
    )
    assert block.steps[block.first("rewrite")].handler["strip_path_prefix"] == "/dash", (
        "the dashboard would see the /dash prefix"
    )
    assert block.steps[-1].upstreams == ["dashboard:8080"], "/dash/* would go to another upstream"


def test_no_secret_in_the_caddyfile(caddyfile):
    assert "{file./etc/caddy/keys/master}" in caddyfile, "the key would not be read from its file"
    assert not re.search(r"sk-[A-Za-z0-9]", caddyfile), "a key literal would sit in the rendered file"
    assert "{env." not in caddyfile, "a key would be read from the edge's environment (changing it replaces the edge)"


def test_health_listener_stays_on_container_loopback(caddyfile):
    assert "http://127.0.0.1:8080 {\n\tbind 127.0.0.1" in caddyfile, (
        "the health listener would be reachable from other containers"
    )


def test_upstream_override_moves_every_use_of_a_service(dev_topology):
    moved = with_overrides(dev_topology, LocalMode({"oauth2-proxy": HostPort("127.0.0.1", 4999)}))
    text = render_caddyfile(moved, "dev")
    assert "oauth2-proxy:4180" not in text and text.count("127.0.0.1:4999") == 2, (
        "forward_auth and the /oauth2/* route must both follow --upstream"
    )


def test_http3_is_off_on_every_server(caddyfile, tmp_path):
    """Caddy would advertise `Alt-Svc: h3=":8443"`, its in-container port, and no UDP port is published."""
    servers = adapt(caddyfile, tmp_path)["apps"]["http"]["servers"]
    for name, server in servers.items():
        assert server.get("protocols") == ["h1", "h2"], f"server {name} would offer HTTP/3: {server.get('protocols')}"
