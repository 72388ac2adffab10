"""Browser apps by tailnet identity: what the plan renders for `auth: tailnet` routes to web apps.

(What they do with the real Caddy against a hostile client: tests/test_live_tailnet_apps.py.)
"""

from __future__ import annotations

import pytest

from harness.program_run import run_program
from harness.stacks import ROOT, TAILNET_APPS_STACK, WEBUI_IDENTITY, tailnet_apps_stack_values
from policy.gateway_contract import TAILNET, markers
from tailnet_llm_gateway.render.caddyfile.render import render_caddyfile
from tailnet_llm_gateway.render.tailscale_serve import serve_config
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.tailnet.merge import parse_hujson
from tailnet_llm_gateway.tailnet.policy import checked_policy
from tailnet_llm_gateway.topology import Topology, build_topology
from tests.caddy_check import caddy_validate
from tests.policy_run import evaluate_pack, mandatory

WEBUI_CAPABILITY = "llm.tail0a1b2c.ts.net/cap/root"
DASH_CAPABILITY = "llm.tail0a1b2c.ts.net/cap/dash"


@pytest.fixture(scope="module")
def apps() -> Topology:
    return build_topology(Settings.from_mapping(tailnet_apps_stack_values()))


def _block(caddyfile: str, head: str) -> str:
    return caddyfile.split(f"\t{head} {{\n", 1)[1].split("\n\t}\n", 1)[0]


def test_a_stack_whose_pages_use_tailnet_identity_needs_no_sso_service(apps):
    values = tailnet_apps_stack_values()
    assert "oauth2-proxy" not in values["services"] and "sso" not in values, "the stack under test still has SSO"
    caddyfile = render_caddyfile(apps, TAILNET_APPS_STACK)
    assert "forward_auth" not in caddyfile and markers.SSO_SNIPPET not in caddyfile, (
        "a stack with no SSO route would still ask an oauth2-proxy it does not have (every page a 502)"
    )
    run = run_program(values, stack=TAILNET_APPS_STACK)
    assert not any("oauth2" in r.name for r in run.resources), "something of oauth2-proxy is still provisioned"


def test_tailnet_pages_are_browser_routes_not_apis(apps):
    pages = {r.path: r for r in apps.routes if r.auth == TAILNET and not r.is_api}
    assert set(pages) == {"/*", "/dash/*"} and not any(r.is_api for r in pages.values()), (
        "a tailnet page would be treated as an API (only its allowPaths forwarded, JSON refusals)"
    )
    block = _block(render_caddyfile(apps, TAILNET_APPS_STACK), "handle")
    assert f"@{markers.NOT_API}" not in block and "respond @not_granted `<!doctype html>" in block, (
        "a refused person would get JSON, or the app would get only API paths"
    )


def test_each_page_hands_its_app_the_identity_in_the_headers_it_names(apps):
    caddyfile = render_caddyfile(apps, TAILNET_APPS_STACK)
    webui = _block(caddyfile, "handle")
    for field, header in WEBUI_IDENTITY.items():
        assert f"header_up {header} {{vars.tailnet_{field}}}" in webui, f"Open WebUI would not get {field} in {header}"
    dash = _block(caddyfile, "handle_path /dash/*")
    assert "header_up X-Forwarded-Email {vars.tailnet_email}" in dash, "the default identity header is missing"


def test_no_client_can_set_an_identity_header_a_page_trusts(apps):
    snippet = render_caddyfile(apps, TAILNET_APPS_STACK).split(f"({markers.IDENTITY_SNIPPET}) {{", 1)[1].split("}")[0]
    for header in WEBUI_IDENTITY.values():
        assert f"request_header -{header}\n" in snippet, f"a client's own {header} would reach the app"


def test_each_page_asks_for_its_own_capability_and_serve_hands_both_on(apps):
    caddyfile = render_caddyfile(apps, TAILNET_APPS_STACK)
    for head, capability in (("handle", WEBUI_CAPABILITY), ("handle_path /dash/*", DASH_CAPABILITY)):
        assert capability.replace(".", "\\.") in _block(caddyfile, head), f"{head} does not check {capability}"
    accepted = serve_config(apps)["Web"]["${TS_CERT_DOMAIN}:443"]["Handlers"]["/"]["AcceptAppCaps"]
    assert accepted == sorted([DASH_CAPABILITY, WEBUI_CAPABILITY]), "serve would not pass a page's capability on"


def test_the_policy_grants_each_page_its_capability_for_its_audiences_only(apps):
    policy = parse_hujson(checked_policy(apps.tailnet, ROOT)[0], "the merged policy")
    granted = {c: g["src"] for g in policy["grants"] for c in (g.get("app") or {})}
    assert granted == {WEBUI_CAPABILITY: ["group:llm-users"], DASH_CAPABILITY: ["group:admins"]}, (
        f"the policy grants the pages' capabilities to others than their audiences: {granted}"
    )


def test_a_user_audience_gets_a_policy_test_that_it_reaches_the_gateway():
    values = tailnet_apps_stack_values()
    next(r for r in values["routes"] if r["path"] == "/dash/*")["audiences"] = ["bob@example.com"]
    topology = build_topology(Settings.from_mapping(values))
    _, assertions = checked_policy(topology.tailnet, ROOT)
    assert any(a.src == "bob@example.com" and a.expect == "accept" for a in assertions), (
        "nothing would tell the tailnet's admin that the dashboard's audience cannot reach the gateway"
    )


def test_caddy_accepts_the_tailnet_pages(apps, tmp_path):
    result = caddy_validate(render_caddyfile(apps, TAILNET_APPS_STACK), tmp_path)
    assert result.returncode == 0, f"Caddy refuses the rendered pages: {result.stderr[-600:]}"


def test_the_pack_passes_the_tailnet_apps_stack():
    violations, _ = evaluate_pack(run_program(tailnet_apps_stack_values(), stack=TAILNET_APPS_STACK), stack="apps")
    assert not mandatory(violations), [v.describe("tailnet-apps") for v in mandatory(violations)]


def test_every_page_refuses_cross_site_writes_unless_its_settings_say_why(apps):
    caddyfile = render_caddyfile(apps, TAILNET_APPS_STACK)
    assert caddyfile.count("@cross_site_write expression") == 2, "a page route takes state-changing cross-site requests"
    values = tailnet_apps_stack_values()
    webui = next(r for r in values["routes"] if r["path"] == "/*")
    webui["allowCrossSite"] = "the dashboard's partner site posts reports here"
    opted = render_caddyfile(build_topology(Settings.from_mapping(values)), TAILNET_APPS_STACK)
    assert opted.count("@cross_site_write expression") == 1, "allowCrossSite did not open exactly its own route"
