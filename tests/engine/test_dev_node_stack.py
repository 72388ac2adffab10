"""The dev-node stack (tailnet-node mode) on a real Docker engine, created from what the program registers.

The Tailscale node itself is left out: tailscaled needs Tailscale's control plane, which is not reachable
here. Everything else runs, including the node's config writer and serve-config volume; a probe container
on proxy-net stands where the node would, and talks to Caddy as the node's serve handler does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from components.topology import NODE_CONTAINER
from harness.engine import new_run_id
from harness.engine.provider import CONTAINER, NETWORK, VOLUME, Engine
from harness.keys import new_key
from harness.program_run import ProgramRun, run_program
from harness.stacks import stack_values
from tests.engine.conftest import assert_reported_healthy_soon_after_answering
from tests.engine.probes import log_lines, logs, process_status, refusals, run_probe

NODE = NODE_CONTAINER
SERVICES = ("model-gateway", "model-gateway-2", "tailnet-edge")


@dataclass
class Deployment:
    engine: Engine
    run: ProgramRun
    key: str


@pytest.fixture(scope="module")
def node(docker_client, stand_in_images) -> Deployment:
    engine = Engine(docker_client, new_run_id())
    key = new_key()
    run = run_program(
        stack_values("dev-node"), stack="dev-node", secrets={"masterKey": key}, networks=engine.network_lookup
    )
    try:
        engine.up(run, skip_containers=frozenset({NODE}))
        yield Deployment(engine, run, key)
    finally:
        engine.teardown()


def _edge_get(
    client,
    deployment: Deployment,
    path: str,
    key: str | None,
    headers: tuple[str, ...] = (),
    address: str | None = None,
) -> str:
    sent = [f"Authorization: Bearer {key}"] * bool(key) + list(headers)
    flags = [part for header in sent for part in ("--header", header)]
    return run_probe(
        client,
        deployment.engine,
        "wget",
        "-q",
        "-S",
        "-O",
        "-",
        *flags,
        f"http://tailnet-edge:8081{path}",
        network="proxy-net",
        address=address,
    )


def test_everything_but_the_node_is_created_and_healthy(node, docker_client):
    created = {
        (d.resource.type, d.resource.inputs["name"])
        for d in node.engine.state.values()
        if d.resource.type in (CONTAINER, NETWORK, VOLUME)
    }
    # What the program registers is pinned by tests/golden/dev-node/urns.txt; all of it but the node runs.
    registered = {(r.type, r.inputs["name"]) for r in node.run.resources if r.type in (CONTAINER, NETWORK, VOLUME)}
    assert created == registered - {(CONTAINER, NODE)} and len(created) > len(SERVICES), (
        f"the engine holds {sorted(created ^ (registered - {(CONTAINER, NODE)}))} beyond or short of what the "
        "program registers (less the node)"
    )
    for name in SERVICES:
        health = docker_client.api.inspect_container(node.engine.container_id(name))["State"]["Health"]["Status"]
        assert health == "healthy", f"{name} is {health}"
    print(f"\ntime to healthy (s): { {k: round(v, 1) for k, v in node.engine.time_to_healthy.items()} }")
    assert_reported_healthy_soon_after_answering(node.engine.health_reports, SERVICES)


def test_serve_config_reaches_the_volume_the_node_mounts(node, docker_client):
    (mount,) = [v for v in node.run.containers[NODE].inputs["volumes"] if v["volumeName"] == "tailnet-node-serve"]
    served = run_probe(
        docker_client,
        node.engine,
        "cat",
        f"{mount['containerPath']}/serve.json",
        volumes=[f"{node.engine.sub.name('tailnet-node-serve')}:{mount['containerPath']}:ro"],
    )
    (upload,) = node.run.config_writers[NODE].inputs["uploads"]
    assert json.loads(served) == json.loads(upload["content"]), "the node would serve another config"


def test_edge_publishes_no_port_and_serves_the_node_over_proxy_net(node, docker_client):
    ports = docker_client.api.inspect_container(node.engine.container_id("tailnet-edge"))["NetworkSettings"]["Ports"]
    assert not any(bindings for bindings in (ports or {}).values()), f"Caddy publishes {ports} in tailnet-node mode"
    listed = _edge_get(docker_client, node, "/llm/v1/models", node.key)
    assert "200 OK" in listed and '"local-chat"' in listed, f"the node could not reach the API: {listed[:400]}"
    refused = _edge_get(docker_client, node, "/llm/v1/models", None)
    assert "401 Unauthorized" in refused and '"local-chat"' not in refused, f"no key was let through: {refused[:400]}"


def test_tailscale_identity_counts_only_from_the_nodes_pinned_address(node, docker_client):
    """A container at the node's address (where the node would be) is believed; one elsewhere on
    proxy-net, sending the same Tailscale-User-Login, is not. Read from the edge's access log."""
    (attachment,) = node.run.containers[NODE].inputs["networksAdvanced"]
    pinned = attachment["ipv4Address"]
    for who, address in (("node", pinned), ("other", None)):
        login = f"{who}-{new_run_id()}@example.com"
        answer = _edge_get(
            docker_client,
            node,
            f"/llm/v1/models?asked_by_{who}=1",
            node.key,
            (f"Tailscale-User-Login: {login}",),
            address,
        )
        assert "200 OK" in answer, f"the request from {who} failed: {answer[:300]}"
        lines = log_lines(docker_client, node.engine.container_id("tailnet-edge"), f"asked_by_{who}", "http.log.access")
        assert len(lines) == 1, f"no access log line for the {who} request"
        entry = json.loads(lines[0])
        expected = login if who == "node" else ""
        assert entry.get("tailnet_user") == expected, (
            f"a request from {address or 'another container'} was logged as tailnet user {entry.get('tailnet_user')!r}"
        )


@pytest.mark.parametrize("name", SERVICES)
def test_services_run_hardened_without_refusals_or_restarts(node, docker_client, name):
    container_id = node.engine.container_id(name)
    status = process_status(docker_client, container_id)
    assert status["Uid"].split()[0] != "0" and int(status["CapEff"], 16) == 0 and status["NoNewPrivs"] == "1", (
        f"{name} runs as root or with capabilities: {status['Uid']}, {status['CapEff']}"
    )
    assert docker_client.api.inspect_container(container_id)["RestartCount"] == 0, f"{name} restarted"
    refused = refusals(logs(docker_client, container_id))
    assert not refused, f"{name} was refused something: {refused[:5]}"
