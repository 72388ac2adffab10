"""The Caddyfile lines the pack reads: each shape the renderer writes (policy/gateway_contract/caddyfile.py)
reads back as what was written, and the rendered files of every stack hold them where the pack looks.

A writer changed without its reader (or the reverse) fails here, before a rule silently stops matching.
"""

from __future__ import annotations

import pytest

from harness.stacks import (
    CLIENTS_STACK,
    ROOT,
    TAILNET_APPS_STACK,
    clients_stack_values,
    stack_values,
    tailnet_apps_stack_values,
)
from policy.gateway_contract import CLIENT_HEADER, GATEWAY_API_PATHS, markers
from policy.gateway_contract import caddyfile as shapes
from tailnet_llm_gateway.plan import Plan, build_plan
from tailnet_llm_gateway.settings import Settings

CAPABILITIES = ("llm.tail0a1b2c.ts.net/cap/llm", "example.com/cap/a.b+c", "x-y.example.org/cap/team/admin_1")


def _block(lines: list[str], head: str = "handle /llm/*") -> str:
    """A site holding one route block with `lines`, as the renderer nests it."""
    body = "\n".join("\t\t" + line for line in lines)
    return f"http://:8081 {{\n\t{head} {{\n{body}\n\t}}\n}}\n"


@pytest.mark.parametrize(
    ("path", "strip", "read_as"),
    [("/llm/*", True, "/llm/*"), ("/dash/*", False, "/dash/*"), ("/*", False, "/*"), (None, False, "/*")],
)
def test_a_route_head_reads_back_as_its_path(path, strip, read_as):
    head = shapes.route_head(path, strip)
    blocks = shapes.route_blocks(_block(["respond 200"], head))
    assert [(b.head, b.path) for b in blocks] == [(head, read_as)], f"the pack would not find the block `{head}`"


def test_blocks_nested_in_a_route_are_not_route_blocks():
    text = _block(["route {", "\thandle_response {", "\t\trespond 200", "\t}", "}"])
    assert [b.path for b in shapes.route_blocks(text)] == ["/llm/*"], "a nested block would read as a route"


def test_an_upstream_reads_back_from_the_proxy_and_forward_auth_heads():
    text = "\n".join([shapes.proxy_head(["model-gateway:4000", "model-gateway-2:4000"]) + " {", "}"])
    text += "\n" + shapes.forward_auth_head("oauth2-proxy:4180") + " {\n}"
    assert shapes.upstream_hosts(text) == {"model-gateway", "oauth2-proxy"}, "the pack would miss an upstream"


def test_a_header_set_on_the_proxied_request_reads_back():
    body = "\n".join(
        [
            shapes.proxy_head(["model-gateway:4000"]) + " {",
            "\t" + shapes.header_up("Authorization", '"Bearer {vars.key_edge}"'),
            "\t" + shapes.header_up(CLIENT_HEADER, "{vars.client}"),
            "}",
        ]
    )
    proxy = shapes.proxy_lines(body)
    assert shapes.CLIENT_HEADER_UP in proxy and shapes.sets_authorization(proxy), (
        "the pack would say the client goes unnamed, or that the client sets Authorization"
    )
    assert not shapes.sets_authorization([shapes.header_up(CLIENT_HEADER, "{vars.client}")])


def test_a_removed_authorization_reads_as_set_by_the_edge():
    assert shapes.sets_authorization([shapes.header_up("Authorization", "")]), "removing it is the edge's choice too"


@pytest.mark.parametrize("node", ["172.30.0.254", "127.0.0.9"])
def test_the_trusted_node_reads_back(node):
    text = f"(strip_client_identity) {{\n\t{shapes.DROP_TAILSCALE_UNLESS_NODE}\n}}\n\t{shapes.not_from_node(node)}\n"
    assert shapes.trusted_node(text) == node, "the pack would not know which address the edge trusts"
    assert shapes.DROP_TAILSCALE_UNLESS_NODE in shapes.identity_snippet_lines(text)


def test_the_identity_snippet_reads_back_its_lines():
    text = f"{shapes.IDENTITY_SNIPPET_HEAD} {{\n\t{shapes.DROP_TAILSCALE}\n\trequest_header -X-Email\n}}\n"
    assert shapes.identity_snippet_lines(text) >= {shapes.DROP_TAILSCALE, "request_header -X-Email"}


def test_a_key_read_from_its_file_reads_back():
    line = shapes.read_key(markers.KEY_VAR_PREFIX + "client_ci", "/etc/caddy/keys", "client-ci")
    assert shapes.key_files(_block([line])) == {"key_client_ci": "client-ci"}, "the pack would not see which file"


def test_a_client_named_on_its_key_reads_back():
    var = markers.KEY_VAR_PREFIX + "client_ci"
    expression = f"{shapes.key_placeholder(var)} != '' && {{bearer_key}} == {shapes.key_placeholder(var)}"
    body = _block([shapes.key_matcher("client_ci", expression), shapes.name_client("client_ci", "ci")])
    assert shapes.key_matchers(body) == {"client_ci": {var}}, "the pack would not see which key a matcher compares"
    assert shapes.named_clients(body) == {"client_ci": "ci"}, "the pack would not see which client is named"


def test_a_caller_named_by_a_placeholder_is_no_client():
    body = _block([shapes.name_client("tailnet_user", "tailnet:{http.request.header.Tailscale-User-Login}")])
    assert shapes.named_clients(body) == {}, "a tailnet caller would be taken for a bearer client"


def test_the_api_path_guard_reads_back_before_the_proxy():
    body = _block(
        [
            shapes.api_paths_guard(GATEWAY_API_PATHS),
            shapes.api_paths_refusal('{"error":{}}'),
            shapes.proxy_head(["model-gateway:4000"]) + " {",
            "}",
        ]
    )
    guard = shapes.api_guard(body)
    assert guard is not None and guard.paths == GATEWAY_API_PATHS, "the pack would not find the guard"
    assert guard.guard_at < body.find("reverse_proxy") and guard.refusal_at < body.find("reverse_proxy")


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_capability_check_reads_back_as_its_capability(capability):
    assert shapes.checked_capabilities(_block([shapes.capability_check(capability)])) == {capability}, (
        "the pack would compare a route's capability with something else"
    )


def test_sso_reads_from_its_import():
    assert shapes.asks_sso(_block([shapes.IMPORT_SSO])) and not shapes.asks_sso(_block(["respond 200"]))


def _plans() -> list[Plan]:
    plans = [build_plan(Settings.from_stack_file(ROOT / f"Pulumi.{s}.yaml"), s, ROOT) for s in ("dev", "dev-node")]
    plans.append(build_plan(Settings.from_mapping(clients_stack_values("dev")), CLIENTS_STACK, ROOT))
    plans.append(build_plan(Settings.from_mapping(tailnet_apps_stack_values()), TAILNET_APPS_STACK, ROOT))
    return plans


@pytest.mark.parametrize("plan", _plans(), ids=lambda p: p.stack)
def test_every_declared_route_has_one_block_the_pack_finds(plan):
    found = [b.path for b in shapes.route_blocks(plan.files.caddyfile)]
    declared = [r["path"] for r in plan.declarations["routes"]]
    assert sorted(found) == sorted(declared + ["/readyz", "/readyz/gateway"] + _backend_checks(found)), (
        f"the pack reads blocks {found}; the stack declares {declared}"
    )


def _backend_checks(found: list[str]) -> list[str]:
    return [p for p in found if p.startswith("/readyz/backend/")]


def test_stack_values_render_each_mode_the_pack_reads():
    modes = {r["auth"] for r in stack_values("dev-node")["routes"]} | {
        r["auth"] for r in tailnet_apps_stack_values()["routes"]
    }
    assert modes >= {"sso", "bearer", "tailnet", "none"}, "a mode's shapes would go untested on a rendered file"


def test_header_lines_read_every_line_that_sets_a_header():
    text = _block(
        [shapes.header_up("Authorization", ""), "request_header -X-Email", "header @x Vary Origin", "vars a b"]
    )
    assert shapes.header_lines(text) == [
        "header_up -Authorization",
        "request_header -X-Email",
        "header @x Vary Origin",
    ], "the pack would miss a line that hands a key on"


def test_a_bare_handle_is_the_catch_all_and_its_proxy_is_found():
    (block,) = shapes.route_blocks(_block(["route {", shapes.proxy_head(["a:1"]) + " {", "}", "}"], "handle"))
    assert block.bare and block.proxy_at > 0, "the pack would take the catch-all for a `/*` route, or miss its proxy"


# Rules that read text with a regex, and what the text is: none of them a Caddyfile line.
NOT_CADDYFILE_REGEXES = {
    "containers.py": "image references (repo:tag@sha256:...)",
    "secret_values.py": "API keys written in plain text anywhere in a resource",
}


def test_no_rule_reads_a_caddyfile_line_with_its_own_regex():
    rules = ROOT / "policy" / "gateway_rules"
    own = {p.name for p in rules.glob("*.py") if "import re\n" in p.read_text()}
    assert own <= set(NOT_CADDYFILE_REGEXES), (
        f"{sorted(own - set(NOT_CADDYFILE_REGEXES))} read text with a regex of their own: a Caddyfile line the "
        "pack reads belongs in gateway_contract/caddyfile.py beside its writer"
    )
