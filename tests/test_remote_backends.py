"""Backends on other tailnet machines: what the plan renders for them, in both exposure modes.

(What they do with the real binaries: tests/test_live_remote.py; on the real engine with a stand-in
tailnet: tests/engine/test_remote_backends.py.)
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import json5
import pytest
import yaml

from harness.program_run import run_program
from harness.stacks import EXPOSURE_STACKS, REMOTE_MACHINES, REMOTE_PORT, ROOT, remote_stack_values, stack_values
from policy.gateway_contract import EDGE_KEY_ENV, ROLE_LABEL, TAILSCALE_RANGES, Role
from tailnet_llm_gateway.addresses import HostPort
from tailnet_llm_gateway.errors import SettingsError
from tailnet_llm_gateway.local_mode import LocalMode, with_overrides
from tailnet_llm_gateway.plan import build_plan
from tailnet_llm_gateway.render.caddyfile.render import render_caddyfile
from tailnet_llm_gateway.render.litellm_config import litellm_config
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.tailnet.check import Outcome
from tailnet_llm_gateway.tailnet.merge import parse_hujson
from tailnet_llm_gateway.tailnet.policy import checked_policy
from tailnet_llm_gateway.topology import EDGE_FORWARD_PORT, Topology, build_topology
from tests.caddy_check import caddy_validate

EDGE_KEY_REFERENCE = f"os.environ/{EDGE_KEY_ENV}"


def _topology(stack: str, **edits) -> Topology:
    values = remote_stack_values(stack)
    values.update(edits)
    return build_topology(Settings.from_mapping(values))


def _on_the_tailnet(host: str | None) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False  # a container name
    return any(address in network for network in TAILSCALE_RANGES)


def _remote_entries(topology: Topology) -> list[dict]:
    remote = {f.url("tailnet-edge") for f in topology.forwards}
    entries = litellm_config(topology)["model_list"]
    return [e for e in entries if any(e["litellm_params"]["api_base"].startswith(u) for u in remote)]


@pytest.mark.parametrize("stack", EXPOSURE_STACKS)
def test_litellm_reaches_other_machines_only_through_the_edge_with_its_key_by_reference(stack):
    topology = _topology(stack)
    config = litellm_config(topology)
    for entry in config["model_list"]:
        host = urlsplit(entry["litellm_params"]["api_base"]).hostname
        assert not _on_the_tailnet(host), (
            f"LiteLLM would dial {host} on the tailnet itself: no dial timeout, no health check, no proxy"
        )
    remote = _remote_entries(topology)
    assert len(remote) == 2, "the spread and the remote-only model should each have one remote deployment"
    assert all(e["litellm_params"]["api_key"] == EDGE_KEY_REFERENCE for e in remote), (
        "LiteLLM would present no key to the edge's forwarder, which refuses it"
    )


@pytest.mark.parametrize("stack", EXPOSURE_STACKS)
def test_readiness_asks_each_remote_backend_through_its_forwarder_with_the_edge_key(stack):
    topology = _topology(stack)
    checks = litellm_config(topology)["general_settings"]["pass_through_endpoints"]
    forwarded = [c for c in checks if c["target"].startswith("http://tailnet-edge:")]
    assert len(forwarded) == len(REMOTE_MACHINES), "a remote backend is missing from the readiness report"
    assert all(c["headers"] == {"Authorization": f"Bearer {EDGE_KEY_REFERENCE}"} for c in forwarded), (
        "the readiness check of a remote backend would be refused by its forwarder"
    )
    local = [c for c in checks if c not in forwarded]
    assert all("headers" not in c for c in local), "the edge's key would reach a local backend"


def test_forwarders_listen_on_consecutive_ports_with_their_dialers_on_loopback_after_them():
    topology = _topology("dev")
    ports = [(f.service.name, f.port, f.dialer_address) for f in topology.forwards]
    assert ports == [
        ("llamacpp-gpu-2", EDGE_FORWARD_PORT, HostPort("127.0.0.1", EDGE_FORWARD_PORT + 2)),
        ("llamacpp-gpu-3", EDGE_FORWARD_PORT + 1, HostPort("127.0.0.1", EDGE_FORWARD_PORT + 3)),
    ], "the forwarders' ports moved: LiteLLM's config and the Caddyfile would disagree after an update"
    caddyfile = render_caddyfile(topology, "remote")
    for forward in topology.forwards:
        block = caddyfile.split(f"http://:{forward.dialer_port} {{", 1)[1].split("\n}", 1)[0]
        assert "\tbind 127.0.0.1\n" in block, "a dialer to another machine would listen on the edge's network"


def _dialer_blocks(caddyfile: str, topology: Topology) -> list[str]:
    return [caddyfile.split(f"http://:{f.dialer_port} {{", 1)[1].split("\n}", 1)[0] for f in topology.forwards]


def test_the_edge_dials_other_machines_through_the_nodes_proxy_in_tailnet_node_mode():
    topology = _topology("dev-node")
    blocks = _dialer_blocks(render_caddyfile(topology, "remote"), topology)
    assert all("network_proxy url socks5://tailnet-egress-proxy:1055" in b for b in blocks), (
        "in userspace networking no container routes into the tailnet: the edge could not reach the machine"
    )


def test_the_edge_dials_other_machines_through_the_hosts_routing_in_host_bind_mode():
    topology = _topology("dev")
    blocks = _dialer_blocks(render_caddyfile(topology, "remote"), topology)
    assert not any("network_proxy" in b for b in blocks), "host-bind has no node proxy to dial through"
    for block, machine in zip(blocks, REMOTE_MACHINES.values(), strict=True):
        assert f"reverse_proxy {machine}:{REMOTE_PORT}" in block, "the dialer does not dial the machine's address"


def _node_env(values: dict) -> list[str]:
    run = run_program(values, stack="dev-node")
    node = next(r for r in run.containers.values() if {"label": ROLE_LABEL, "value": Role.NODE} in r.inputs["labels"])
    envs = node.inputs["envs"]
    return envs["value"] if isinstance(envs, dict) else envs


def test_the_node_runs_a_socks5_proxy_only_when_a_service_is_on_another_machine():
    assert "TS_SOCKS5_SERVER=tailnet-egress-proxy:1055" in _node_env(remote_stack_values("dev-node")), (
        "the edge's dialers would find no proxy at the node, or it would listen where other containers reach it"
    )
    assert not any(e.startswith("TS_SOCKS5_SERVER=") for e in _node_env(stack_values("dev-node"))), (
        "a node without remote services would offer every container of its network a way into the tailnet"
    )


@pytest.mark.parametrize("stack", EXPOSURE_STACKS)
def test_the_policy_names_each_machine_and_grants_the_gateway_only_its_model_ports(stack):
    topology = _topology(stack)
    text, assertions = checked_policy(topology.tailnet, ROOT)
    policy = parse_hujson(text, "the merged policy")
    target = topology.tailnet.target
    for alias, address in REMOTE_MACHINES.items():
        assert policy["hosts"][alias] == address, f"the policy cannot name {alias}"
        grants = [g for g in policy["grants"] if alias in g["dst"]]
        assert grants == [{"src": [target], "dst": [alias], "ip": [f"tcp:{REMOTE_PORT}"]}], (
            f"the gateway would reach more of {alias} than its model port, or someone else would: {grants}"
        )
        mine = [a for a in assertions if a.src == target and a.dst.startswith(f"{alias}:")]
        assert {(a.expect, a.dst) for a in mine} == {
            ("accept", f"{alias}:{REMOTE_PORT}"),
            ("deny", f"{alias}:22"),
            ("deny", f"{alias}:80"),
        } and all(a.outcome is Outcome.PASSED for a in mine), f"the policy's own tests do not hold this: {mine}"


def test_a_base_policy_that_puts_the_machine_elsewhere_is_refused_naming_the_machine(tmp_path):
    (tmp_path / "tailnet").mkdir()
    base = (ROOT / "tailnet" / "dev-base.hujson").read_text()
    assert '"hosts": {' in base
    (tmp_path / "tailnet" / "dev-base.hujson").write_text(
        base.replace('"hosts": {', '"hosts": {\n\t\t"gpu-2": "100.88.0.9",', 1)
    )
    with pytest.raises(SettingsError) as refused:
        checked_policy(_topology("dev").tailnet, tmp_path)
    assert refused.value.setting == "machines.gpu-2.address" and "100.88.0.9" in str(refused.value), (
        f"the refusal names the wrong setting: {refused.value}"
    )


def test_the_local_check_mode_moves_forwarders_and_the_nodes_proxy_to_loopback():
    local = LocalMode(
        upstreams={"llamacpp-gpu-2": HostPort("127.0.0.1", 7002)},
        listen=HostPort("127.0.0.1", 7000),
        forward_listen=HostPort("127.0.0.1", 7100),
        egress=HostPort("127.0.0.1", 7200),
    )
    topology = with_overrides(_topology("dev-node"), local)
    assert [(f.host, f.port, f.dialer_port) for f in topology.forwards] == [
        ("127.0.0.1", 7100, 7102),
        ("127.0.0.1", 7101, 7103),
    ]
    bases = {e["litellm_params"]["api_base"] for e in litellm_config(topology)["model_list"]}
    assert {"http://127.0.0.1:7100/v1", "http://127.0.0.1:7101/v1"} <= bases, "LiteLLM would dial the deployed ports"
    caddyfile = render_caddyfile(topology, "remote")
    assert "reverse_proxy 127.0.0.1:7002" in caddyfile and "socks5://127.0.0.1:7200" in caddyfile, (
        "the moved machine or proxy does not reach the Caddyfile"
    )
    assert "bind 127.0.0.1" in caddyfile.split("http://:7100 {", 1)[1].split("\n}", 1)[0], (
        "a forwarder would listen on every interface of the machine running the checks"
    )


@pytest.mark.parametrize("stack", EXPOSURE_STACKS)
def test_caddy_accepts_the_forwarders(stack, tmp_path):
    result = caddy_validate(render_caddyfile(_topology(stack), "remote"), tmp_path)
    assert result.returncode == 0, f"Caddy refuses the rendered forwarders: {result.stderr[-600:]}"


def test_the_rendered_config_names_no_key_value():
    text = yaml.safe_dump(litellm_config(_topology("dev")))
    assert EDGE_KEY_REFERENCE in text and "sk-" not in text, "a key value would be written into LiteLLM's config"


def test_only_the_node_and_the_edge_share_the_network_of_the_nodes_socks5_proxy():
    """The proxy has no authentication and dials from the node's own address, which the edge believes: a
    container that reached it could pose as any tailnet login. So its network holds the two alone, is
    internal (no route out) and takes no other compose project's containers."""
    run = run_program(remote_stack_values("dev-node"), stack="dev-node")
    on_egress = sorted(
        container.inputs["name"]
        for container in run.containers.values()
        for attachment in container.inputs.get("networksAdvanced") or []
        if attachment["name"] == "tailnet-egress"
    )
    assert on_egress == ["tailnet-edge", "tailnet-node"], f"the SOCKS5 proxy's network holds {on_egress}"
    (network,) = [r for r in run.resources if r.type == "docker:index/network:Network" and r.name == "tailnet-egress"]
    assert network.inputs.get("internal") is True and network.inputs.get("attachable") is False, (
        f"the SOCKS5 proxy's network is open to other containers: {network.inputs}"
    )
    node = next(c for c in run.containers.values() if c.inputs["name"] == "tailnet-node")
    (egress,) = [a for a in node.inputs["networksAdvanced"] if a["name"] == "tailnet-egress"]
    assert egress.get("aliases") == ["tailnet-egress-proxy"], "the name the proxy listens on is not the node's there"


def test_the_policy_tests_that_no_member_reaches_the_nodes_socks5_port():
    plan = build_plan(Settings.from_mapping(stack_values("dev-node")), "dev-node", ROOT)
    policy = json5.loads(plan.files.tailnet_policy)
    members = [t for t in policy["tests"] if "tag:llm-gateway:443" in t.get("accept", [])]
    assert members and all("tag:llm-gateway:1055" in t.get("deny", []) for t in members), (
        f"nothing checks that a tailnet device cannot reach the node's SOCKS5 proxy: {members}"
    )
