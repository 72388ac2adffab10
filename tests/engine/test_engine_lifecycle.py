"""The stack's life on a real engine: repeated starts, destroy and re-create among other networks and
other projects' containers, and a boot where the tailnet address is not there yet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.engine import DEV_CERT_DIR, new_run_id
from harness.engine.provider import TEST_LABEL, Engine, EngineError
from harness.keys import new_key
from harness.processes import worker_restarts
from harness.program_run import run_program
from harness.stacks import ROOT, stack_values
from tailnet_llm_gateway.images import CADDY_IMAGE, parse_image
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import build_topology
from tests.conftest import cannot_run
from tests.engine.conftest import assert_reported_healthy_soon_after_answering
from tests.engine.probes import logs

GATEWAY = "model-gateway"
NONLOCAL_BIND = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")
STARTS = 10


@pytest.fixture
def engine(docker_client, stand_in_images, dev_certs):
    engine = Engine(docker_client, new_run_id(), host_paths={DEV_CERT_DIR: str(dev_certs["dir"])})
    yield engine
    engine.teardown()


def _busy_core(client, engine: Engine) -> str:
    """A container that keeps one core busy, as a model running beside the gateway does."""
    container = client.api.create_container(
        parse_image(CADDY_IMAGE).tagged,
        entrypoint=["sh", "-c", "while :; do :; done"],
        labels=engine.sub.label,
        user="61011:61011",
        host_config=client.api.create_host_config(network_mode="none"),
    )
    client.api.start(container["Id"])
    return container["Id"]


def test_gateway_starts_healthy_ten_times_in_a_row_without_a_worker_restart(engine, docker_client):
    """With two workers on two cores, uvicorn killed workers still importing LiteLLM (here, with
    one core kept busy, two workers lost 1-2 workers per start and took 21-25 s to get healthy)."""
    values = stack_values("dev")
    run = run_program(values, secrets={"masterKey": new_key()}, networks=engine.network_lookup)
    gateway = build_topology(Settings.from_mapping(values)).gateway
    _busy_core(docker_client, engine)
    # One LiteLLM is what is started ten times: the edge and the second replica stay out.
    skipped = {"tailnet-edge", "tailnet-edge-config-writer", f"{GATEWAY}-2"}
    skipped |= {r.inputs["name"] for r in run.key_writers.values()}
    engine.up(run, skip_containers=frozenset(skipped))
    times, reports = [], {}
    for start in range(STARTS):
        if start:
            engine.recreate(GATEWAY)  # delete and create again, waiting for healthy as `pulumi up` does
        container_id = engine.container_id(GATEWAY)
        text = logs(docker_client, container_id)
        assert worker_restarts(text, gateway.server, gateway.workers) == 0, (
            f"start {start}: {gateway.server} restarted a worker:\n{text[-2000:]}"
        )
        assert docker_client.api.inspect_container(container_id)["RestartCount"] == 0, f"start {start}: restarted"
        times.append(engine.time_to_healthy[GATEWAY])
        reports[f"start {start}"] = engine.health_reports[GATEWAY]
    print(f"\nLiteLLM time to healthy over {STARTS} starts, one core busy (s): {[round(t, 1) for t in times]}")
    assert_reported_healthy_soon_after_answering(reports, list(reports))


def _blockers(client, engine: Engine) -> None:
    """Networks that take part of Docker's default pools, as other projects' networks would; one holds the
    subnet proxy-net was pinned to before (172.24.0.0/16)."""
    client.api.create_network(
        engine.sub.name("blocker-pinned"),
        driver="bridge",
        labels=engine.sub.label,
        ipam={"Driver": "default", "Config": [{"Subnet": "172.24.0.0/16"}]},
    )
    for index in range(3):
        client.api.create_network(engine.sub.name(f"blocker-{index}"), driver="bridge", labels=engine.sub.label)


def _other_project(client, engine: Engine) -> str:
    """A container of another project (say oauth2-proxy's compose project) attached to proxy-net."""
    container = client.api.create_container(
        parse_image(CADDY_IMAGE).tagged,
        entrypoint=["sleep", "600"],
        labels=engine.sub.label,
        user="61010:61010",
        host_config=client.api.create_host_config(network_mode=engine.sub.name("proxy-net")),
    )
    client.api.start(container["Id"])
    return container["Id"]


def test_destroy_and_recreate_three_times_beside_other_networks_and_projects(engine, docker_client):
    """A subnet pinned in the default pools collides, and other projects' containers on
    proxy-net made `pulumi destroy` fail ("has active endpoints")."""
    _blockers(docker_client, engine)
    other = None
    for cycle in range(3):
        run = run_program(stack_values("dev"), secrets={"masterKey": new_key()}, networks=engine.network_lookup)
        engine.up(run, skip_containers=frozenset({GATEWAY, f"{GATEWAY}-2"}))
        proxy_net = docker_client.api.inspect_network(engine.sub.name("proxy-net"))
        assert proxy_net["IPAM"]["Config"][0]["Subnet"] == "10.124.24.0/24", (
            "proxy-net would not get its pinned subnet beside the other networks"
        )
        other = other or _other_project(docker_client, engine)
        engine.destroy()
        attached = docker_client.api.inspect_network(engine.sub.name("proxy-net"))["Containers"] or {}
        assert list(attached) == [other], (
            f"cycle {cycle}: destroy left {attached} on proxy-net, or cut off the other project"
        )
        assert docker_client.api.inspect_container(other)["State"]["Running"], "the other project's container stopped"
        print(f"\ncycle {cycle}: created and destroyed; proxy-net kept for the other project")


def test_edge_starts_while_the_tailnet_address_is_not_there_yet(engine, docker_client, dev_certs):
    """At boot Docker starts the edge before tailscaled has the host's tailnet address, and binding
    443 there fails; with the setting docs/operations.md names, the bind succeeds."""
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "net.ipv4.ip_nonlocal_bind=1" in operations, "docs/operations.md does not tell host-bind users what to set"
    if not os.access(NONLOCAL_BIND, os.W_OK):
        cannot_run("changing net.ipv4.ip_nonlocal_bind needs root")
    before = NONLOCAL_BIND.read_text().strip()
    # The declared tailnet address as it is (no loopback substitution): this host does not have it.
    absent = Engine(
        docker_client, engine.sub.label[TEST_LABEL], loopback=None, host_paths={DEV_CERT_DIR: str(dev_certs["dir"])}
    )
    run = run_program(stack_values("dev"), secrets={"masterKey": new_key()}, networks=absent.network_lookup)
    edge_only = frozenset({GATEWAY, f"{GATEWAY}-2", "model-gateway-config-writer"})
    try:
        NONLOCAL_BIND.write_text("0")
        with pytest.raises(EngineError, match="cannot assign requested address"):
            absent.up(run, skip_containers=edge_only)
        NONLOCAL_BIND.write_text("1")
        absent.up(run, skip_containers=edge_only)
        edge = docker_client.api.inspect_container(absent.container_id("tailnet-edge"))
        assert edge["State"]["Health"]["Status"] == "healthy", "the edge did not come up without its tailnet address"
        assert edge["NetworkSettings"]["Ports"]["8443/tcp"][0]["HostIp"] == "100.101.102.103", (
            "the edge would be published elsewhere than on its tailnet address"
        )
    finally:
        NONLOCAL_BIND.write_text(before)
        absent.destroy()
        absent.purge()
