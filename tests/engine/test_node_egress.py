"""The node's SOCKS5 proxy on a real Docker engine: reachable from the edge, from no other container.

tailscaled's SOCKS5 server has no authentication, and a dial through it to a container address leaves from
the node's pinned address, the one source whose Tailscale identity headers the edge believes. So the proxy
listens on a network of its own (`tailnet-egress`, internal) that only the node and the edge join, under a
name that resolves there alone. The dev-node stack with models on other machines is created as the program
registers it; tailscaled cannot join a tailnet here, so a busybox listener stands on the node's port inside
the node's container, with the node's networks and aliases exactly as registered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from components.render.tailscale_serve import render_serve_config
from components.settings import Settings
from components.topology import EGRESS_NETWORK, EGRESS_PROXY_HOST, NODE_CONTAINER, NODE_SOCKS5_PORT, build_topology
from harness.engine import new_run_id
from harness.engine.provider import Engine
from harness.keys import new_key
from harness.program_run import ProgramRun, run_program
from harness.stacks import remote_stack_values
from tests.engine.probes import exec_in, log_lines, run_probe

EDGE = "tailnet-edge"


@dataclass
class Egress:
    engine: Engine
    run: ProgramRun
    key: str


@pytest.fixture(scope="module")
def egress(docker_client, stand_in_images) -> Egress:
    engine = Engine(docker_client, new_run_id())
    key = new_key()
    run = run_program(
        remote_stack_values("dev-node"), stack="dev-node", secrets={"masterKey": key}, networks=engine.network_lookup
    )
    node = run.containers[NODE_CONTAINER].inputs
    # The stand-in: a listener on the proxy's port in the node's container (its image, user and networks
    # as registered); no tailscaled, so no healthcheck of it.
    node["entrypoints"] = ["/bin/busybox", "nc", "-ll", "-p", str(NODE_SOCKS5_PORT), "-e", "/bin/busybox", "echo", "ok"]
    node.pop("healthcheck", None)
    node["wait"] = False
    try:
        engine.up(run)
        yield Egress(engine, run, key)
    finally:
        engine.teardown()


def _connects_from_edge(client, engine: Engine, host: str) -> str:
    _, output = exec_in(client, engine.container_id(EDGE), "/bin/busybox", "nc", "-w", "3", host, str(NODE_SOCKS5_PORT))
    return output


def _connects_from_probe(client, engine: Engine, network: str, host: str) -> str:
    """A one-off container on `network` (as any other container of the stack) tries the proxy's port."""
    command = f"/bin/busybox nc -w 3 {host} {NODE_SOCKS5_PORT}; echo exit=$?"
    return run_probe(client, engine, "/bin/busybox", "sh", "-c", command, network=network)


def _node_address(client, engine: Engine, network: str) -> str:
    attached = client.api.inspect_container(engine.container_id(NODE_CONTAINER))["NetworkSettings"]["Networks"]
    return attached[engine.sub.name(network)]["IPAddress"]


def test_the_edge_reaches_the_nodes_socks5_proxy_by_its_name(egress, docker_client):
    answer = _connects_from_edge(docker_client, egress.engine, EGRESS_PROXY_HOST)
    assert answer.strip(), f"the edge could not reach {EGRESS_PROXY_HOST}:{NODE_SOCKS5_PORT}: its dialers would fail"


@pytest.mark.parametrize("network", ["proxy-net", "backend", "frontend"])
def test_no_other_container_reaches_the_nodes_socks5_proxy(egress, docker_client, network):
    """Neither by the proxy's name nor by the node's address on the proxy's network: a container that could
    would reach the edge from the node's address and be believed as any tailnet login."""
    address = _node_address(docker_client, egress.engine, EGRESS_NETWORK)
    for host in (EGRESS_PROXY_HOST, address):
        answer = _connects_from_probe(docker_client, egress.engine, network, host)
        assert "exit=0" not in answer, f"a container on {network} reached the node's SOCKS5 proxy at {host}"


def test_only_the_node_and_the_edge_are_on_the_proxys_network(egress, docker_client):
    network = docker_client.api.inspect_network(egress.engine.sub.name(EGRESS_NETWORK))
    names = sorted(c["Name"] for c in (network.get("Containers") or {}).values())
    expected = sorted(egress.engine.sub.name(n) for n in (EDGE, NODE_CONTAINER))
    assert names == expected, f"the SOCKS5 proxy's network holds {names}"
    assert network["Internal"] is True, "the SOCKS5 proxy's network routes out of the host"


def test_the_nodes_serve_reaches_the_edge_from_its_pinned_address(egress, docker_client):
    """The node joins two networks the edge is on. serve proxies to the edge by a name of the edge network
    alone, so the edge sees the node's pinned address there and believes its Tailscale headers; by the
    container's name it could reach the edge over the SOCKS5 network, from an address the edge trusts not."""
    topology = build_topology(Settings.from_mapping(remote_stack_values("dev-node")))
    target = json.loads(render_serve_config(topology))["Web"]["${TS_CERT_DOMAIN}:443"]["Handlers"]["/"]["Proxy"]
    host = urlsplit(target).hostname or ""
    _, resolved = exec_in(docker_client, egress.engine.container_id(NODE_CONTAINER), "/bin/busybox", "nslookup", host)
    edge_networks = docker_client.api.inspect_container(egress.engine.container_id(EDGE))["NetworkSettings"]["Networks"]
    site_address = edge_networks[egress.engine.sub.name("proxy-net")]["IPAddress"]
    answers = set(re.findall(r"Address(?: \d+)?:\s*([0-9.]+)", resolved.split(host, 1)[-1]))
    assert answers == {site_address}, (
        f"from the node, {host} resolves to {sorted(answers)}, not only the edge's address on its network "
        f"({site_address})"
    )
    login = f"node-{new_run_id()}@example.com"
    marker = f"asked_by_{new_run_id()}"
    _, answer = exec_in(
        docker_client,
        egress.engine.container_id(NODE_CONTAINER),
        "/bin/busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "--header",
        f"Authorization: Bearer {egress.key}",
        "--header",
        f"Tailscale-User-Login: {login}",
        f"{target}/llm/v1/models?{marker}=1",
    )
    assert '"local-chat"' in answer, f"the node could not reach the edge at {target}: {answer[:300]}"
    lines = log_lines(docker_client, egress.engine.container_id(EDGE), marker, "http.log.access")
    assert len(lines) == 1 and json.loads(lines[0]).get("tailnet_user") == login, (
        f"the edge did not take the node's request as from the node (its pinned address): {lines}"
    )
