"""The policy pack, before merge: every stack file at the root passes every mandatory rule, and every
mandatory rule catches a stack that breaks it.

Settings validation already refuses most of these breaks, so most violating cases here are the dev
stack's registered resources changed the way a program bug or a hand edit would change them; the
pack is the second line that holds even then.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel

from tests.conftest import ROOT, stack_values, write_stack
from tests.policy_run import evaluate_pack, gateway_rules, mandatory
from tests.program_run import ProgramRun, Registered, run_program
from tests.pulumi_internals import unknown_value

STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))
MANDATORY_RULES = sorted(p.name for p in gateway_rules.POLICIES if p.enforcement_level == EnforcementLevel.MANDATORY)


def stack_file_violations(path: Path, project_dir: Path = ROOT) -> list[str]:
    """Run the program for one stack file under mocks and describe every mandatory violation."""
    stack = path.name[len("Pulumi."):-len(".yaml")]
    run = run_program(stack_values(stack, path.parent), stack=stack, project_dir=project_dir)
    violations, _ = evaluate_pack(run, stack=stack)
    return [v.describe(path.name) for v in mandatory(violations)]


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=[p.name for p in STACK_FILES])
def test_stack_file_passes_every_mandatory_rule(stack_file):
    violations = stack_file_violations(stack_file)
    assert not violations, "\n".join(violations)


def test_every_stack_file_at_the_root_is_checked():
    assert [p.name for p in STACK_FILES] and "Pulumi.dev.yaml" in [p.name for p in STACK_FILES]


def test_a_new_stack_file_is_checked_and_named(tmp_path, dev_values):
    """A stack whose settings pass, but whose base policy lets another group reach the gateway."""
    shutil.copytree(ROOT / "tailnet", tmp_path / "tailnet")
    base = (tmp_path / "tailnet" / "dev-base.hujson").read_text()
    base = base.replace('"groups": {', '"groups": {\n\t\t"group:ops": ["olga@example.com"],')
    base = base.replace('"grants": [', '"grants": [\n\t\t{"src": ["group:ops"], "dst": ["tag:llm-gateway"], "ip": ["tcp:22"]},')
    (tmp_path / "tailnet" / "dev-base.hujson").write_text(base)
    path = write_stack(tmp_path, "staging", dev_values)
    violations = stack_file_violations(path, project_dir=tmp_path)
    assert violations and "Pulumi.staging.yaml" in violations[0], violations
    assert "tailnet-policy-tested-and-scoped" in violations[0] and "tailscale:index/acl:Acl" in violations[0]


@pytest.fixture(scope="module")
def runs() -> dict[str, ProgramRun]:
    return {stack: run_program(stack_values(stack), stack=stack) for stack in ("dev", "dev-node")}


@pytest.fixture(scope="module")
def dev_run(runs) -> ProgramRun:
    return runs["dev"]


def _editable(run: ProgramRun) -> ProgramRun:
    """A copy of the registered resources to break (options hold live Outputs, so they stay out)."""
    return ProgramRun(resources=[Registered(r.type, r.name, copy.deepcopy(r.inputs), r.custom) for r in run.resources])


def _container(run: ProgramRun, role: str) -> dict:
    for resource in run.resources:
        labels = resource.inputs.get("labels") or []
        if {"label": "tailnet-llm-gateway.role", "value": role} in labels:
            return resource.inputs
    raise AssertionError(f"no {role} container")


def _upload_into_read_only_root(run) -> None:
    """What the program did before config writers: the service container itself receives the upload."""
    edge = _container(run, "edge")
    edge["uploads"] = [{"file": "/etc/caddy/rendered/Caddyfile", "content": "{}", "permissions": "0444"}]


def _of_type(run: ProgramRun, type_: str) -> dict:
    return next(r.inputs for r in run.resources if r.type == type_)


def _caddyfile_edit(old: str, new: str):
    def edit(run):
        writer = next(r.inputs for r in run.resources
                      if {"label": "tailnet-llm-gateway.config-for", "value": "edge"} in r.inputs.get("labels", []))
        upload = next(u for u in writer["uploads"] if u["file"].endswith("/Caddyfile"))
        assert old in upload["content"], f"mutation target {old!r} not in the Caddyfile"
        upload["content"] = upload["content"].replace(old, new, 1)
    return edit


def _set(role: str, key: str, value):
    def edit(run):
        _container(run, role)[key] = value
    return edit


def _acl_edit(old: str, new: str):
    def edit(run):
        acl = _of_type(run, "tailscale:index/acl:Acl")
        assert old in acl["acl"]
        acl["acl"] = acl["acl"].replace(old, new, 1)
    return edit


def _envs_key(run) -> str:
    envs = _container(run, "model-gateway")["envs"]
    values = envs["value"] if isinstance(envs, dict) else envs
    return next(e.split("=", 1)[1] for e in values if e.startswith("LITELLM_MASTER_KEY="))


VIOLATIONS = {
    "no-wildcard-host-ports": _set("edge", "ports", [{"internal": 8443.0, "external": 443.0, "ip": "0.0.0.0"}]),
    "gateway-port-loopback-only": _set("model-gateway", "ports",
                                       [{"internal": 11435.0, "external": 11435.0, "ip": "192.168.1.20"}]),
    "edge-port-tailnet-only": _set("edge", "ports", [{"internal": 8443.0, "external": 443.0, "ip": "127.0.0.1"}]),
    "no-privileged-or-host-namespaces": _set("model-gateway", "networkMode", "host"),
    "no-sensitive-host-mounts": lambda run: _container(run, "edge")["volumes"].append(
        {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"}),
    "capabilities-dropped": _set("edge", "capabilities", {"adds": ["SYS_ADMIN"], "drops": ["ALL"]}),
    "no-new-privileges": _set("model-gateway", "securityOpts", []),
    "read-only-root": _set("edge", "readOnly", False),
    "no-uploads-into-read-only-root": _upload_into_read_only_root,
    "file-capabilities-kept": _set("edge", "capabilities", {"drops": ["ALL"]}),
    "subnet-outside-default-pools": lambda run: next(
        r.inputs for r in run.resources if r.type == "docker:index/network:Network" and r.name == "proxy-net"
    ).update(ipamConfigs=[{"subnet": "172.24.0.0/16"}]),
    "non-root-user": _set("model-gateway", "user", "0:0"),
    "resource-limits": _set("edge", "ulimits", []),
    "images-pinned-by-digest": _set("model-gateway", "image", "ghcr.io/berriai/litellm-non_root:main-stable"),
    "no-secrets-in-files-or-commands": lambda run: _container(run, "model-gateway")["command"].extend(
        ["--master_key", _envs_key(run)]),
    "healthcheck-required": lambda run: _container(run, "edge").pop("healthcheck"),
    "edge-upstreams-share-a-network": _set("edge", "networksAdvanced", [{"name": "frontend"}]),
    "sso-bypasses-declared": _caddyfile_edit("\t\t\timport sso\n\t\t\treverse_proxy open-webui:8080",
                                             "\t\t\treverse_proxy open-webui:8080"),
    "api-bypass-forwards-only-the-api": _caddyfile_edit("@not_api not path /v1/*", "@not_api not path /*"),
    "routes-resolve-as-declared": _caddyfile_edit(
        "\t# /dash/* requires SSO", "\thandle /DASH/* {\n\t\treverse_proxy dashboard:8080\n\t}\n\n\t# /dash/* requires SSO"),
    "tailnet-policy-tested-and-scoped": _acl_edit('"src": ["group:llm-users"], "dst": ["llm-gateway-host"]',
                                                  '"src": ["*"], "dst": ["llm-gateway-host"]'),
    # These two hold in tailnet-node mode, so they break the dev-node stack.
    "tailnet-node-loopback-only": ("dev-node", _set("edge", "ports",
                                                    [{"internal": 8081.0, "external": 8081.0, "ip": "100.101.102.103"}])),
    "tailnet-node-auth-key-safe": ("dev-node", lambda run: _of_type(run, "tailscale:index/tailnetKey:TailnetKey").update(
        reusable=True, preauthorized=False)),
}


def test_every_mandatory_rule_has_a_violating_case():
    assert sorted(VIOLATIONS) == MANDATORY_RULES, "a mandatory rule has no test that it catches anything"


@pytest.mark.parametrize("rule", MANDATORY_RULES)
def test_rule_catches_a_stack_that_breaks_it(runs, rule):
    stack, mutate = VIOLATIONS[rule] if isinstance(VIOLATIONS[rule], tuple) else ("dev", VIOLATIONS[rule])
    broken = _editable(runs[stack])
    mutate(broken)
    caught = {v.policy for v in mandatory(evaluate_pack(broken)[0])}
    assert rule in caught, f"{rule} let a violating stack through"


@pytest.mark.parametrize("stack", ["dev", "dev-node"])
@pytest.mark.parametrize("rule", MANDATORY_RULES)
def test_dev_stacks_pass_the_rule(runs, rule, stack):
    caught = [v for v in mandatory(evaluate_pack(runs[stack])[0]) if v.policy == rule]
    assert not caught, caught


def test_documented_root_exception_is_accepted(dev_run):
    broken = _editable(dev_run)
    edge = _container(broken, "edge")
    edge["user"] = "0:0"
    edge["labels"].append({"label": "tailnet-llm-gateway.runs-as-root-because", "value": "image needs it"})
    assert "non-root-user" not in {v.policy for v in evaluate_pack(broken)[0]}


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


@pytest.mark.parametrize(("block", "why"), [
    ("handle /LLM/* {\n\t\treverse_proxy oauth2-proxy:4180\n\t}", "an API route without the key"),
    ("handle /Dash/* {\n\t\treverse_proxy oauth2-proxy:4180\n\t}", "an SSO route without SSO"),
    ("handle /dash/admin/* {\n\t\treverse_proxy dashboard:8080\n\t}", "a protected sub-path without SSO"),
    ("handle /DASH/* {\n\t\troute {\n\t\t\timport sso\n\t\t\treverse_proxy dashboard:8080\n\t\t}\n\t}",
     "a case twin that Caddy may try first"),
])
def test_routes_rule_catches_blocks_caddy_would_resolve_otherwise(dev_run, block, why):
    broken = _editable(dev_run)
    _caddyfile_edit("\t# /dash/* requires SSO", f"\t{block}\n\n\t# /dash/* requires SSO")(broken)
    caught = [v for v in mandatory(evaluate_pack(broken)[0]) if v.policy == "routes-resolve-as-declared"]
    assert caught, f"the pack let {why} through"
