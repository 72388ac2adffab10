"""The local check mode (render --listen ...), one transformation of a built topology: what it renders
listens on loopback only, every listener as Caddy itself reads the file (`caddy adapt`) and LiteLLM's own
server flags, for every stack the tests run; and what it leaves alone is the stack as deployed."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from harness.stacks import ROOT, TEST_STACKS, stack_values
from tailnet_llm_gateway.addresses import HostPort, parse_host_port
from tailnet_llm_gateway.local_mode import LocalMode
from tailnet_llm_gateway.plan import Plan, build_plan
from tailnet_llm_gateway.settings import Settings
from tests.caddy_json import adapt


def _local_plan(stack: str, listen: str = "127.0.0.1", **flags) -> Plan:
    """The stack rendered the way the live tests run it: every container moved onto loopback, the site on
    `listen`; the edge's metrics where the local mode puts them unless a flag says."""
    values = TEST_STACKS[stack]()
    settings = Settings.from_mapping(values)
    ports = iter(range(19000, 19100))
    upstreams = {
        name: HostPort("127.0.0.1", next(ports)) for name, spec in values["services"].items() if "machine" not in spec
    }
    remote = any("machine" in spec for spec in values["services"].values())
    node = settings.exposure == "tailnet-node"
    local = LocalMode(
        upstreams,
        HostPort(listen, 18080),
        node_address="127.0.0.9" if node and any(r["auth"] == "tailnet" for r in values["routes"]) else None,
        keys_dir="/tmp/keys",
        forward_listen=HostPort("127.0.0.1", 19200) if remote else None,
        egress=HostPort("127.0.0.1", 19300) if remote and node else None,
        **flags,
    )
    return build_plan(settings, "local", ROOT, local)


def _loopback(address: str) -> bool:
    host = parse_host_port(address).host if not address.startswith(":") else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.mark.parametrize("stack", sorted(TEST_STACKS))
def test_every_caddy_listener_rendered_for_local_checks_is_on_loopback(stack, tmp_path: Path):
    config = adapt(_local_plan(stack).files.caddyfile, tmp_path)
    listeners = [a for server in config["apps"]["http"]["servers"].values() for a in server["listen"]]
    assert listeners and all(_loopback(a) for a in listeners), (
        f"a local check of {stack} would listen beyond loopback (on the machine's LAN): {listeners}"
    )


@pytest.mark.parametrize("stack", sorted(TEST_STACKS))
def test_litellm_rendered_for_local_checks_listens_on_loopback(stack):
    args = _local_plan(stack).topology.gateway.process("/tmp/litellm.yaml").args
    host = args[args.index("--host") + 1]
    assert ipaddress.ip_address(host).is_loopback, f"LiteLLM checked locally would listen on {host}"


def test_a_metrics_listener_moved_elsewhere_on_loopback_stays_there(tmp_path: Path):
    plan = _local_plan("dev", metrics_listen=HostPort("127.0.0.2", 19181))
    config = adapt(plan.files.caddyfile, tmp_path)
    listeners = {a for server in config["apps"]["http"]["servers"].values() for a in server["listen"]}
    assert "127.0.0.2:19181" in listeners, f"--metrics-listen was not where the edge's metrics went: {listeners}"


def test_the_deployed_stack_keeps_its_container_listeners(tmp_path: Path):
    plan = build_plan(Settings.from_mapping(stack_values("dev-node")), "dev-node", ROOT)
    config = adapt(plan.files.caddyfile, tmp_path)
    listeners = {a for server in config["apps"]["http"]["servers"].values() for a in server["listen"]}
    assert {":8081", ":9180", "127.0.0.1:8080"} <= listeners, (
        f"the deployed edge lost a listener (the node's site, its metrics, its healthcheck): {listeners}"
    )
    args = plan.topology.gateway.process("/etc/litellm/config.yaml").args
    assert args[args.index("--host") + 1] == "0.0.0.0", "LiteLLM in its container must answer on its networks"


def test_no_part_of_the_product_knows_of_the_local_mode():
    """Only the CLI (its flags) and the plan (which applies it) name it; the model, the renderers, the auth
    modes and the components see a topology, moved or not."""
    parts = ("topology", "render", "auth", "docker", "tailnet", "settings")
    naming = [
        str(path.relative_to(ROOT))
        for part in parts
        for path in (ROOT / "tailnet_llm_gateway" / part).rglob("*.py")
        if "local_mode" in path.read_text() or "LocalMode" in path.read_text()
    ]
    assert not naming, f"{naming} branch on the local check mode: it belongs in tailnet_llm_gateway/local_mode.py"
