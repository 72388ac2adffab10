"""The policy pack, before merge: every stack file at the root passes every mandatory rule, and every
mandatory rule catches a stack that breaks it.

Settings validation already refuses most of these breaks, so most violating cases here are the dev
stack's registered resources changed the way a program bug or a hand edit would change them; the
pack is the second line that holds even then.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel

from harness.program_run import ProgramRun, Registered, run_program
from harness.pulumi_internals import unknown_value
from harness.stacks import (
    CLIENTS_STACK,
    ROOT,
    TAILNET_APPS_STACK,
    clients_stack_values,
    remote_stack_values,
    stack_values,
    tailnet_apps_stack_values,
    write_stack,
)
from policy.gateway_contract import CONFIG_FOR_LABEL, ROLE_LABEL, ROOT_EXCEPTION_LABEL, Role, markers
from tests.policy_run import evaluate_pack, gateway_rules, mandatory

STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))
REMOTE_STACK = "remote"
MANDATORY_RULES = sorted(p.name for p in gateway_rules.POLICIES if p.enforcement_level == EnforcementLevel.MANDATORY)


def stack_file_violations(path: Path, project_dir: Path = ROOT) -> list[str]:
    """Run the program for one stack file under mocks and describe every mandatory violation."""
    stack = path.name[len("Pulumi.") : -len(".yaml")]
    run = run_program(stack_values(stack, path.parent), stack=stack, project_dir=project_dir)
    violations, _ = evaluate_pack(run, stack=stack)
    return [v.describe(path.name) for v in mandatory(violations)]


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=[p.name for p in STACK_FILES])
def test_stack_file_passes_every_mandatory_rule(stack_file):
    violations = stack_file_violations(stack_file)
    assert not violations, "\n".join(violations)


def test_every_stack_file_at_the_root_is_checked():
    assert [p.name for p in STACK_FILES] and "Pulumi.dev.yaml" in [p.name for p in STACK_FILES], (
        "the pack would check no stack file, or not the dev stack"
    )


def test_a_new_stack_file_is_checked_and_named(tmp_path, dev_values):
    """A stack whose settings pass, but whose base policy lets another group reach the gateway."""
    shutil.copytree(ROOT / "tailnet", tmp_path / "tailnet")
    base = (tmp_path / "tailnet" / "dev-base.hujson").read_text()
    base = base.replace('"groups": {', '"groups": {\n\t\t"group:ops": ["olga@example.com"],')
    base = base.replace(
        '"grants": [', '"grants": [\n\t\t{"src": ["group:ops"], "dst": ["tag:llm-gateway"], "ip": ["tcp:22"]},'
    )
    (tmp_path / "tailnet" / "dev-base.hujson").write_text(base)
    path = write_stack(tmp_path, "staging", dev_values)
    violations = stack_file_violations(path, project_dir=tmp_path)
    assert violations and "Pulumi.staging.yaml" in violations[0], violations
    assert "tailnet-policy-tested-and-scoped" in violations[0] and "tailscale:index/acl:Acl" in violations[0], (
        "the violation does not name the rule and the resource"
    )


@pytest.fixture(scope="module")
def runs() -> dict[str, ProgramRun]:
    found = {stack: run_program(stack_values(stack), stack=stack) for stack in ("dev", "dev-node")}
    # Named clients, two bearer routes, a tailnet route (tests/conftest.py).
    # Models on two other tailnet machines (host-bind); browser apps by tailnet identity (tailnet-node).
    remote = run_program(remote_stack_values("dev"), stack=REMOTE_STACK)
    apps = run_program(tailnet_apps_stack_values(), stack=TAILNET_APPS_STACK)
    clients = run_program(clients_stack_values(), stack=CLIENTS_STACK)
    return found | {CLIENTS_STACK: clients, REMOTE_STACK: remote, TAILNET_APPS_STACK: apps}


@pytest.fixture(scope="module")
def dev_run(runs) -> ProgramRun:
    return runs["dev"]


def _editable(run: ProgramRun) -> ProgramRun:
    """A copy of the registered resources to break (options hold live Outputs, so they stay out)."""
    return ProgramRun(resources=[Registered(r.type, r.name, copy.deepcopy(r.inputs), r.custom) for r in run.resources])


def _container(run: ProgramRun, role: str) -> dict:
    for resource in run.resources:
        labels = resource.inputs.get("labels") or []
        if {"label": ROLE_LABEL, "value": role} in labels:
            return resource.inputs
    raise AssertionError(f"no {role} container")


def _upload_into_read_only_root(run) -> None:
    """What the program did before config writers: the service container itself receives the upload."""
    edge = _container(run, Role.EDGE)
    edge["uploads"] = [{"file": "/etc/caddy/rendered/Caddyfile", "content": "{}", "permissions": "0444"}]


def _of_type(run: ProgramRun, type_: str) -> dict:
    return next(r.inputs for r in run.resources if r.type == type_)


def _upload_edit(role: str, file_name: str, old: str, new: str):
    """Change the file a service runs with, as its config writer uploads it."""

    def edit(run):
        writer = next(
            r.inputs for r in run.resources if {"label": CONFIG_FOR_LABEL, "value": role} in r.inputs.get("labels", [])
        )
        upload = next(u for u in writer["uploads"] if u["file"].endswith("/" + file_name))
        assert old in upload["content"], f"mutation target {old!r} not in {file_name}"
        upload["content"] = upload["content"].replace(old, new, 1)

    return edit


def _caddyfile_edit(old: str, new: str):
    return _upload_edit(Role.EDGE, "Caddyfile", old, new)


def _litellm_config_edit(old: str, new: str):
    return _upload_edit(Role.GATEWAY, "config.yaml", old, new)


def _tailnet_route_edit(old: str, new: str):
    """Edit only the tailnet route's block of the Caddyfile."""

    def edit(run):
        writer = next(
            r.inputs
            for r in run.resources
            if {"label": CONFIG_FOR_LABEL, "value": Role.EDGE} in r.inputs.get("labels", [])
        )
        upload = next(u for u in writer["uploads"] if u["file"].endswith("/Caddyfile"))
        head, _, rest = upload["content"].partition("handle_path /tsllm/* {")
        assert old in rest, f"mutation target {old!r} not in the tailnet route"
        upload["content"] = head + "handle_path /tsllm/* {" + rest.replace(old, new, 1)

    return edit


def _set(role: str, key: str, value):
    def edit(run):
        _container(run, role)[key] = value

    return edit


def _acl_edit(old: str, new: str):
    def edit(run):
        acl = _of_type(run, "tailscale:index/acl:Acl")
        assert old in acl["acl"], "the case's edit does not apply to the policy any more"
        acl["acl"] = acl["acl"].replace(old, new, 1)

    return edit


def _envs_key(run) -> str:
    envs = _container(run, Role.GATEWAY)["envs"]
    values = envs["value"] if isinstance(envs, dict) else envs
    return next(e.split("=", 1)[1] for e in values if e.startswith("LITELLM_MASTER_KEY="))


def _network(name: str, **changes):
    def edit(run):
        next(r.inputs for r in run.resources if r.type == "docker:index/network:Network" and r.name == name).update(
            changes
        )

    return edit


@dataclass(frozen=True)
class Row:
    """One case of the table: registered inputs changed as a program bug or a hand edit would change them,
    and exactly the mandatory rules that must then report it."""

    case: str
    mutate: Callable[[ProgramRun], None]
    violates: frozenset[str]
    stack: str = "dev"


def row(case: str, mutate, *violates: str, stack: str = "dev") -> Row:
    return Row(case, mutate, frozenset(violates), stack)


TABLE = [
    row(
        "edge published on every interface",
        _set(Role.EDGE, "ports", [{"internal": 8443.0, "external": 443.0, "ip": "0.0.0.0"}]),
        "no-wildcard-host-ports",
        "edge-port-tailnet-only",
    ),
    row(
        "gateway published on the LAN",
        _set(Role.GATEWAY, "ports", [{"internal": 11435.0, "external": 11435.0, "ip": "192.168.1.20"}]),
        "gateway-port-loopback-only",
    ),
    row(
        "edge published on loopback",
        _set(Role.EDGE, "ports", [{"internal": 8443.0, "external": 443.0, "ip": "127.0.0.1"}]),
        "edge-port-tailnet-only",
    ),
    row("gateway on the host network", _set(Role.GATEWAY, "networkMode", "host"), "no-privileged-or-host-namespaces"),
    row(
        "edge with the Docker socket",
        lambda run: _container(run, Role.EDGE)["volumes"].append(
            {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"}
        ),
        "no-sensitive-host-mounts",
    ),
    row(
        "edge with SYS_ADMIN added back",
        _set(Role.EDGE, "capabilities", {"adds": ["SYS_ADMIN"], "drops": ["ALL"]}),
        "capabilities-dropped",
        "file-capabilities-kept",
    ),
    row("gateway without no-new-privileges", _set(Role.GATEWAY, "securityOpts", []), "no-new-privileges"),
    row("edge with a writable root", _set(Role.EDGE, "readOnly", False), "read-only-root"),
    row("upload into the edge's read-only root", _upload_into_read_only_root, "no-uploads-into-read-only-root"),
    row(
        "caddy's file capability dropped from the bounding set",
        _set(Role.EDGE, "capabilities", {"drops": ["ALL"]}),
        "file-capabilities-kept",
    ),
    row(
        "proxy-net pinned in Docker's pools",
        _network("proxy-net", ipamConfigs=[{"subnet": "172.24.0.0/16"}]),
        "subnet-outside-default-pools",
    ),
    row("gateway as root", _set(Role.GATEWAY, "user", "0:0"), "non-root-user"),
    row("gateway as nobody", _set(Role.GATEWAY, "user", "65534:65534"), "resource-limits"),
    row("edge without a process limit", _set(Role.EDGE, "ulimits", []), "resource-limits"),
    row(
        "gateway on a floating tag",
        _set(Role.GATEWAY, "image", "ghcr.io/berriai/litellm-non_root:main-stable"),
        "images-pinned-by-digest",
    ),
    row(
        "master key on the command line",
        lambda run: _container(run, Role.GATEWAY)["command"].extend(["--master_key", _envs_key(run)]),
        "no-secrets-in-files-or-commands",
    ),
    row(
        "edge without a healthcheck", lambda run: _container(run, Role.EDGE).pop("healthcheck"), "healthcheck-required"
    ),
    row(
        "gateway removed at once when replaced",
        _set(Role.GATEWAY, "destroyGraceSeconds", 0),
        "drained-before-removal",
    ),
    row(
        "edge on another network",
        _set(Role.EDGE, "networksAdvanced", [{"name": "frontend"}]),
        "edge-upstreams-share-a-network",
    ),
    row(
        "catch-all without SSO",
        _caddyfile_edit(
            f"\t\t\timport {markers.SSO_SNIPPET}\n\t\t\treverse_proxy open-webui:8080",
            "\t\t\treverse_proxy open-webui:8080",
        ),
        "sso-bypasses-declared",
    ),
    row(
        "a readiness check that asks a protected upstream",
        _caddyfile_edit(
            "reverse_proxy model-gateway:11435 model-gateway-2:11435 {\n\t\t\t\t# Any replica",
            "reverse_proxy dashboard:8080 {\n\t\t\t\t# Any replica",
        ),
        "sso-bypasses-declared",
    ),
    row(
        "the API bypass forwarding everything",
        _caddyfile_edit(f"@{markers.NOT_API} not path /v1/models ", f"@{markers.NOT_API} not path /* "),
        "api-bypass-forwards-only-the-api",
    ),
    row(
        "an upper-case twin of a protected route without SSO",
        _caddyfile_edit(
            "\t# /dash/* requires SSO",
            "\thandle /DASH/* {\n\t\treverse_proxy dashboard:8080\n\t}\n\n\t# /dash/* requires SSO",
        ),
        "routes-resolve-as-declared",
        "sso-bypasses-declared",
    ),
    row(
        "everyone granted the gateway",
        _acl_edit(
            '"src": ["group:llm-users"], "dst": ["llm-gateway-host"]', '"src": ["*"], "dst": ["llm-gateway-host"]'
        ),
        "tailnet-policy-tested-and-scoped",
    ),
    # These hold in tailnet-node mode, so they break the dev-node stack.
    row(
        "a node-mode edge on a tailnet address",
        _set(Role.EDGE, "ports", [{"internal": 8081.0, "external": 8081.0, "ip": "100.101.102.103"}]),
        "tailnet-node-loopback-only",
        stack="dev-node",
    ),
    row(
        "a grant that opens the node's SOCKS5 proxy to its audience",
        _acl_edit(
            '"dst": ["tag:llm-gateway"], "ip": ["tcp:443"]', '"dst": ["tag:llm-gateway"], "ip": ["tcp:443", "tcp:1055"]'
        ),
        "tailnet-node-serves-https-only",
        stack="dev-node",
    ),
    row(
        "a reusable, unapproved node key",
        lambda run: _of_type(run, "tailscale:index/tailnetKey:TailnetKey").update(reusable=True, preauthorized=False),
        "tailnet-node-auth-key-safe",
        stack="dev-node",
    ),
    row(
        "the tailnet route forwarding everything",
        _tailnet_route_edit(f"@{markers.NOT_API} not path /v1/models ", f"@{markers.NOT_API} not path /* "),
        "api-bypass-forwards-only-the-api",
        stack=CLIENTS_STACK,
    ),
    row(
        "a bearer route accepting a client the settings keep off it",
        _caddyfile_edit(
            "\t\t\tvars @client_laptop client laptop\n\t\t\tlog_append",
            "\t\t\tvars @client_laptop client laptop\n\t\t\tvars @client_laptop client ci\n\t\t\tlog_append",
        ),
        "api-routes-accept-declared-clients",
        stack=CLIENTS_STACK,
    ),
    row(
        "the master key handed to LiteLLM",
        _caddyfile_edit(
            f'header_up Authorization "Bearer {{vars.{markers.EDGE_KEY_VAR}}}"',
            'header_up Authorization "Bearer {vars.key_master}"',
        ),
        "api-identity-on-the-proxied-request",
    ),
    row(
        "the client named before the proxy, where a Connection header can remove it",
        _caddyfile_edit(
            "\t\t\t\theader_up X-Gateway-Client {vars.client}\n",
            "",
        ),
        "api-identity-on-the-proxied-request",
    ),
    row(
        "the client's own Authorization left for the MCP server",
        _caddyfile_edit(
            "\t\t\t\theader_up -Authorization\n\t\t\t\theader_up X-Gateway-Client", "\t\t\t\theader_up X-Gateway-Client"
        ),
        "api-identity-on-the-proxied-request",
        stack=CLIENTS_STACK,
    ),
    row(
        "one client's name on another client's key",
        _caddyfile_edit("keys/client-ci}", "keys/client-laptop}"),
        "api-routes-accept-declared-clients",
        stack=CLIENTS_STACK,
    ),
    row(
        "the master key still accepted beside named clients",
        _caddyfile_edit("vars @client_ci client ci", "vars @client_ci client master"),
        "api-routes-accept-declared-clients",
        stack=CLIENTS_STACK,
    ),
    row(
        "Tailscale headers from a client kept in host-bind mode",
        _caddyfile_edit("\trequest_header -Tailscale-*\n", ""),
        "tailnet-identity-only-from-the-node",
    ),
    row(
        "Tailscale headers trusted from any container",
        _caddyfile_edit(f"\trequest_header @{markers.NOT_FROM_NODE} -Tailscale-*\n", ""),
        "tailnet-identity-only-from-the-node",
        stack=CLIENTS_STACK,
    ),
    row(
        "the node off the address the edge trusts",
        lambda run: _container(run, Role.NODE)["networksAdvanced"][0].update(ipv4Address="10.124.24.253"),
        "tailnet-identity-only-from-the-node",
        stack=CLIENTS_STACK,
    ),
    row(
        "LiteLLM's metrics open to anyone who reaches its port",
        _litellm_config_edit("require_auth_for_metrics_endpoint: true", "require_auth_for_metrics_endpoint: false"),
        "gateway-metrics-behind-the-master-key",
    ),
    # Models on other tailnet machines.
    row(
        "LiteLLM dialing another machine itself",
        _litellm_config_edit("api_base: http://tailnet-edge:9200/v1", "api_base: http://100.88.0.2:8080/v1"),
        "gateway-reaches-other-machines-through-the-edge",
        stack=REMOTE_STACK,
    ),
    row(
        "the gateway granted every port of another machine",
        _acl_edit('"dst": ["gpu-2"], "ip": ["tcp:8080"]', '"dst": ["gpu-2"], "ip": ["*"]'),
        "gateway-granted-model-ports-only",
        stack=REMOTE_STACK,
    ),
    row(
        "the gateway granted ssh on a tag's machines",
        _acl_edit('"dst": ["gpu-2"], "ip": ["tcp:8080"]', '"dst": ["tag:server"], "ip": ["tcp:22"]'),
        "gateway-granted-model-ports-only",
        stack=REMOTE_STACK,
    ),
    # Browser apps by tailnet identity.
    row(
        "a tailnet page checking another route's capability",
        _caddyfile_edit('`"llm\\.tail0a1b2c\\.ts\\.net/cap/root":', '`"llm\\.tail0a1b2c\\.ts\\.net/cap/dash":'),
        "tailnet-routes-granted-a-capability",
        stack=TAILNET_APPS_STACK,
    ),
    row(
        "a tailnet page's capability granted to another audience",
        _acl_edit(
            '{"src": ["group:llm-users"], "dst": ["tag:llm-gateway"], "ip": ["tcp:443"], "app"',
            '{"src": ["group:admins"], "dst": ["tag:llm-gateway"], "ip": ["tcp:443"], "app"',
        ),
        "tailnet-routes-granted-a-capability",
        stack=TAILNET_APPS_STACK,
    ),
    # Exceptions the rules accept.
    row(
        "root with a documented reason",
        lambda run: (
            _container(run, Role.EDGE).update(user="0:0"),
            _container(run, Role.EDGE)["labels"].append({"label": ROOT_EXCEPTION_LABEL, "value": "why"}),
        ),
    ),
    row("a config writer: writable, no healthcheck, never started", lambda run: None),
]


def test_every_mandatory_rule_has_a_violating_case():
    covered = set().union(*(r.violates for r in TABLE))
    assert covered == set(MANDATORY_RULES), f"rules with no case that breaks them: {set(MANDATORY_RULES) - covered}"


@pytest.mark.parametrize("case", TABLE, ids=[r.case for r in TABLE])
def test_pack_reports_exactly_what_the_case_breaks(runs, case):
    broken = _editable(runs[case.stack])
    case.mutate(broken)
    caught = {v.policy for v in mandatory(evaluate_pack(broken, stack=case.stack)[0])}
    assert caught == case.violates, (
        f"{case.case}: the pack reported {sorted(caught)}, the case breaks {sorted(case.violates)}"
    )


@pytest.mark.parametrize("stack", ["dev", "dev-node", CLIENTS_STACK])
@pytest.mark.parametrize("rule", MANDATORY_RULES)
def test_dev_stacks_pass_the_rule(runs, rule, stack):
    caught = [v for v in mandatory(evaluate_pack(runs[stack])[0]) if v.policy == rule]
    assert not caught, caught


def test_rule_on_an_unknown_value_is_not_run_and_not_passed(dev_run):
    broken = _editable(dev_run)
    _container(broken, "model-gateway")["ports"] = unknown_value()
    violations, not_run = evaluate_pack(broken)
    assert "gateway-port-loopback-only" in not_run, "an unknown port was treated as a passing one"


def test_pack_runs_on_a_preview_without_mandatory_violations():
    """During preview the generated key is unknown: rules that need it are not run, never failed."""
    violations, not_run = evaluate_pack(run_program(stack_values("dev"), preview=True))
    assert not mandatory(violations), [v.describe("Pulumi.dev.yaml") for v in mandatory(violations)]
    assert "no-secrets-in-files-or-commands" in not_run, "the unknown key was treated as known"


@pytest.mark.parametrize(
    ("block", "why"),
    [
        ("handle /LLM/* {\n\t\treverse_proxy oauth2-proxy:4180\n\t}", "an API route without the key"),
        ("handle /Dash/* {\n\t\treverse_proxy oauth2-proxy:4180\n\t}", "an SSO route without SSO"),
        ("handle /dash/admin/* {\n\t\treverse_proxy dashboard:8080\n\t}", "a protected sub-path without SSO"),
        (
            f"handle /DASH/* {{\n\t\troute {{\n\t\t\timport {markers.SSO_SNIPPET}\n"
            "\t\t\treverse_proxy dashboard:8080\n\t\t}\n\t}",
            "a case twin that Caddy may try first",
        ),
    ],
)
def test_routes_rule_catches_blocks_caddy_would_resolve_otherwise(dev_run, block, why):
    broken = _editable(dev_run)
    _caddyfile_edit("\t# /dash/* requires SSO", f"\t{block}\n\n\t# /dash/* requires SSO")(broken)
    caught = [v for v in mandatory(evaluate_pack(broken)[0]) if v.policy == "routes-resolve-as-declared"]
    assert caught, f"the pack let {why} through"
