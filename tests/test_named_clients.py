"""Guarantees of named clients, several bearer routes and tailnet identity, before anything runs: the
topology, the rendered files, what the program registers under mocks, and the client-config formats.
(The live behaviour is in tests/test_live_auth.py.)"""

from __future__ import annotations

import ast
import json
import re
import shlex

import json5
import pytest
import yaml

from harness.program_run import ProgramRun, run_program, unwrap
from harness.stacks import CLIENTS_STACK, clients_stack_values
from policy.gateway_contract import Role, client_key_file, markers
from tailnet_llm_gateway.client_config import ClientAccess, client_access, client_output, render_client_config
from tailnet_llm_gateway.errors import SettingsError
from tailnet_llm_gateway.render.caddyfile.render import render_caddyfile
from tailnet_llm_gateway.render.gateway_auth import render_gateway_auth, render_gateway_clients
from tailnet_llm_gateway.render.litellm_config import litellm_config
from tailnet_llm_gateway.render.tailscale_serve import serve_config
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.tailnet.entries import gateway_policy
from tailnet_llm_gateway.topology import NODE_CONTAINER, build_topology
from tests.caddy_json import adapt, site_blocks

CONTAINER = "docker:index/container:Container"
PASSWORD = "random:index/randomPassword:RandomPassword"
CAPABILITY = "llm.tail0a1b2c.ts.net/cap/tsllm"
LAPTOP_KEY = "sk-laptop-chosen-0123456789abcdef"


@pytest.fixture(scope="module")
def topology():
    return build_topology(Settings.from_mapping(clients_stack_values()))


@pytest.fixture(scope="module")
def clients_run() -> ProgramRun:
    return run_program(clients_stack_values(), stack=CLIENTS_STACK, secrets={"clientKeys": {"laptop": LAPTOP_KEY}})


# ---- topology and rendered files -----------------------------------------------------------------------


def test_each_bearer_route_accepts_exactly_its_clients(topology):
    by_path = {r.path: [c.name for c in r.access.clients()] for r in topology.routes if r.auth == "bearer"}
    assert by_path == {"/llm/*": ["ci", "laptop"], "/mcp/*": ["laptop"]}, f"routes accept other clients: {by_path}"


ROUTE_CLIENTS = {"/llm/*": {"ci", "laptop"}, "/mcp/*": {"laptop"}}


def assert_each_route_takes_only_its_own_clients_keys(caddyfile: str, work) -> None:
    """Each bearer route names exactly its clients, and a request is named only by comparing against those
    clients' own keys: no other key (the master key, another client's) opens it."""
    blocks = {b.path: b for b in site_blocks(adapt(caddyfile, work))}
    for path, expected in ROUTE_CLIENTS.items():
        namings = [s for s in blocks[path].steps if s.kind == "vars" and "client" in s.handler]
        named = {s.handler["client"] for s in namings}
        assert named == expected, f"{path} would accept the keys of {named}, not {expected}"
        compared = {
            var
            for s in namings
            for m in s.matchers
            if "expression" in m
            for var in re.findall(r"\{(?:http\.)?vars\.(\w+)\}", m["expression"]["expr"])
        }
        loaded = {
            var: value
            for s in blocks[path].steps
            if s.kind == "vars"
            for var, value in s.handler.items()
            if var.startswith("key_")
        }
        files = {loaded.get(var, "").rsplit("/", 1)[-1].rstrip("}") for var in compared}
        assert files == {client_key_file(name) for name in expected}, f"{path} would accept the keys in {sorted(files)}"


def test_the_caddyfile_checks_each_routes_own_clients_and_never_the_master_key(topology, tmp_path):
    assert_each_route_takes_only_its_own_clients_keys(render_caddyfile(topology, CLIENTS_STACK), tmp_path)


def test_the_client_check_fails_on_a_route_that_takes_the_master_key(topology, tmp_path):
    """The check above, on a broken copy: /mcp/* also takes the master key."""
    text = render_caddyfile(topology, CLIENTS_STACK)
    mcp_start = text.index("handle_path /mcp/*")
    laptop = "{file./etc/caddy/keys/client-laptop}"
    broken = text[:mcp_start] + text[mcp_start:].replace(laptop, "{file./etc/caddy/keys/master}", 1)
    with pytest.raises(AssertionError, match="master"):
        assert_each_route_takes_only_its_own_clients_keys(broken, tmp_path)


def test_only_litellm_routes_get_the_edges_key_and_every_api_upstream_the_client(topology, tmp_path):
    blocks = {b.path: b for b in site_blocks(adapt(render_caddyfile(topology, CLIENTS_STACK), tmp_path))}
    for path, to_litellm in (("/llm/*", True), ("/tsllm/*", True), ("/mcp/*", False)):
        (proxy,) = [s for s in blocks[path].steps if s.kind == "reverse_proxy"]
        sets = proxy.set_up()
        if to_litellm:
            assert sets.get("Authorization") == [f"Bearer {{http.vars.{markers.EDGE_KEY_VAR}}}"], (
                f"{path}: LiteLLM gets no key"
            )
        else:
            deleted = proxy.handler["headers"]["request"].get("delete", [])
            assert "Authorization" not in sets and "Authorization" in deleted, (
                f"{path}: a key would reach the MCP server"
            )
        assert sets.get("X-Gateway-Client") == ["{http.vars.client}"], f"{path}: the upstream would not know the client"
        assert "LITELLM_MASTER_KEY" not in json.dumps(proxy.handler), f"{path}: the master key would leave the edge"


def test_litellm_limits_each_client_to_its_models(topology):
    assert json.loads(render_gateway_clients(topology)) == {"ci": ["local-chat"], "laptop": None}, (
        "LiteLLM would enforce other limits"
    )
    # Read, not imported: importing it would import LiteLLM, which fetches a price list from the internet.
    module = ast.parse(render_gateway_auth(topology, CLIENTS_STACK))
    assigned = {ast.unparse(n.targets[0]) for n in module.body if isinstance(n, ast.Assign)}
    assert "CLIENTS_FILE" in assigned, "the auth module would not read the client table beside it"
    settings = litellm_config(topology)
    assert settings["general_settings"]["custom_auth"] == "gateway_auth.user_api_key_auth", "no custom auth"
    assert settings["litellm_settings"]["enable_post_custom_auth_checks"] is True, "models would not be enforced"


def test_the_serve_config_forwards_the_capability_and_the_grant_gives_it(topology):
    handler = serve_config(topology)["Web"]["${TS_CERT_DOMAIN}:443"]["Handlers"]["/"]
    assert handler["AcceptAppCaps"] == [CAPABILITY], "serve would not tell the edge about the capability"
    grants = gateway_policy(topology.tailnet).grants
    app = [g for g in grants if "app" in g]
    assert app == [
        {"src": ["group:llm-users"], "dst": ["tag:llm-gateway"], "ip": ["tcp:443"], "app": {CAPABILITY: [{}]}}
    ], f"the policy would not grant the route's audiences its capability: {app}"


def test_the_edge_trusts_tailscale_headers_only_from_the_nodes_pinned_address(topology):
    text = render_caddyfile(topology, CLIENTS_STACK)
    assert topology.node is not None and topology.node.address == "10.124.24.254", "the node has no fixed address"
    assert f"@{markers.NOT_FROM_NODE} not remote_ip 10.124.24.254" in text, (
        "any container could claim a tailnet identity"
    )
    assert f"request_header @{markers.NOT_FROM_NODE} -Tailscale-*" in text, "forged Tailscale headers would pass"


# ---- the program under mocks ---------------------------------------------------------------------------


def test_each_client_has_a_generated_key_of_its_own(clients_run):
    passwords = {r.name: r.inputs for r in clients_run.of_type(PASSWORD)}
    assert {"gateway-client-laptop", "gateway-client-ci"} <= set(passwords), f"no key per client: {sorted(passwords)}"
    assert passwords["gateway-client-ci"]["keepers"] == {"keyVersion": "1"}, "a key could not be rotated alone"


def test_a_configured_client_key_is_used_and_every_client_key_is_a_secret_file_of_the_edge(clients_run):
    key_files = clients_run.key_files()
    assert all(secret for _, secret in key_files.values()), "client keys would sit in plain text in the state"
    files = {upload["file"]: upload["content"] for upload, _ in key_files.values()}
    assert files["/etc/caddy/keys/client-laptop"] == LAPTOP_KEY, "the configured key for laptop was not used"
    assert files["/etc/caddy/keys/client-ci"].startswith("sk-"), "ci has no generated key at the edge"
    for name in ("model-gateway", "model-gateway-2"):
        gateway_envs, _ = unwrap(clients_run.containers[name].inputs["envs"])
        assert not any(
            key in " ".join(gateway_envs) for key in files.values() if key != files["/etc/caddy/keys/edge"]
        ), "LiteLLM would hold the clients' keys"


def test_each_client_gets_a_secret_output_with_what_it_needs(clients_run):
    assert {client_output("laptop"), client_output("ci")} <= clients_run.secret_exports, "a client output is plain"
    ci = clients_run.exports[client_output("ci")]
    assert ci == {
        "name": "ci",
        "key": ci["key"],
        "baseUrls": {"/llm/*": "https://llm.tail0a1b2c.ts.net/llm/v1"},
        "models": ["local-chat"],
    } and ci["key"].startswith("sk-"), f"ci's output: {ci}"
    laptop = clients_run.exports[client_output("laptop")]
    assert laptop["key"] == LAPTOP_KEY and set(laptop["baseUrls"]) == {"/llm/*", "/mcp/*"}, laptop


def test_rotating_one_client_key_touches_no_other():
    values = clients_stack_values()
    values["clients"]["ci"]["keyVersion"] = 2
    run = run_program(values, stack=CLIENTS_STACK)
    keepers = {r.name: r.inputs["keepers"] for r in run.of_type(PASSWORD) if r.name.startswith("gateway-client-")}
    assert keepers == {"gateway-client-ci": {"keyVersion": "2"}, "gateway-client-laptop": {"keyVersion": "1"}}, (
        f"a rotation would replace other keys too: {keepers}"
    )


def test_the_program_deploys_the_capability_in_the_serve_config_and_the_applied_policy(clients_run):
    served = json.loads(clients_run.rendered_file(Role.NODE))
    assert served["Web"]["${TS_CERT_DOMAIN}:443"]["Handlers"]["/"]["AcceptAppCaps"] == [CAPABILITY], (
        "the node the program deploys would not forward the capability"
    )
    (acl,) = clients_run.of_type("tailscale:index/acl:Acl")
    policy = json5.loads(acl.inputs["acl"])
    assert any(CAPABILITY in (g.get("app") or {}) for g in policy["grants"]), "the applied policy grants no capability"


def test_the_node_has_its_pinned_address_on_the_edge_network(clients_run):
    (attachment,) = clients_run.containers[NODE_CONTAINER].inputs["networksAdvanced"]
    assert attachment["ipv4Address"] == "10.124.24.254", "the edge would trust Tailscale headers from no one"


# ---- client configs ------------------------------------------------------------------------------------

ACCESS = ClientAccess(
    name="ci",
    key="sk-ci 'quoted'",
    base_urls={"/llm/*": "https://llm.example.ts.net/llm/v1"},
    models=("local-chat", "local-embed"),
)


def test_json_config_has_base_url_key_and_models():
    data = json.loads(render_client_config(ACCESS, "json"))
    assert (data["baseUrl"], data["apiKey"], data["models"]) == (
        "https://llm.example.ts.net/llm/v1",
        "sk-ci 'quoted'",
        ["local-chat", "local-embed"],
    ), data


def test_env_config_sets_openai_and_anthropic_variables_safely_quoted():
    lines = render_client_config(ACCESS, "env").splitlines()
    env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    assert env == {
        "OPENAI_BASE_URL": "https://llm.example.ts.net/llm/v1",
        "OPENAI_API_KEY": "sk-ci 'quoted'",
        "ANTHROPIC_BASE_URL": "https://llm.example.ts.net/llm",
        "ANTHROPIC_API_KEY": "sk-ci 'quoted'",
    }, env


def test_continue_config_lists_each_model_as_openai_compatible():
    document = yaml.safe_load(render_client_config(ACCESS, "continue"))
    assert document["schema"] == "v1" and [m["model"] for m in document["models"]] == ["local-chat", "local-embed"]
    for model in document["models"]:
        assert model["provider"] == "openai" and model["apiBase"].endswith("/v1") and model["apiKey"] == ACCESS.key


def test_aider_config_names_the_endpoint_and_a_model():
    document = yaml.safe_load(render_client_config(ACCESS, "aider"))
    assert document == {
        "openai-api-base": "https://llm.example.ts.net/llm/v1",
        "openai-api-key": "sk-ci 'quoted'",
        "model": "openai/local-chat",
    }, document


def test_a_stack_without_clients_has_the_master_as_its_one_client():
    outputs = {"masterKey": "sk-m", "apiRoutes": {"/llm/*": "https://h/llm/v1"}, "models": ["a"]}
    assert client_access(outputs, "master") == ClientAccess("master", "sk-m", {"/llm/*": "https://h/llm/v1"}, ("a",))
    with pytest.raises(SettingsError, match="its one client is 'master'"):
        client_access(outputs, "laptop")


def test_an_unknown_client_is_named_with_a_suggestion():
    outputs = {client_output("laptop"): {"key": "k", "baseUrls": {"/": "u"}, "models": []}}
    with pytest.raises(SettingsError, match="did you mean 'laptop'"):
        client_access(outputs, "lapop")
