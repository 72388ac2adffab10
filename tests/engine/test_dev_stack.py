"""The dev stack (host-bind) on a real Docker engine, created from what the program registers.

The stack runs neither llama.cpp nor oauth2-proxy (other projects do): the API is checked up to the
model list, which LiteLLM answers from its config, and the SSO routes are not exercised here.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import pytest

from harness.engine import DEV_CERT_DIR, DEV_HOST, new_run_id
from harness.engine.provider import TEST_LABEL, Engine, EngineError
from harness.keys import new_key
from harness.program_run import ProgramRun, run_program
from harness.stacks import ROOT, stack_values
from policy.gateway_contract import MASTER_KEY_ENV, Role
from tailnet_llm_gateway.topology import EDGE_CONTAINER
from tests.engine.conftest import (
    assert_engine_holds_what_the_program_registers,
    assert_reported_healthy_soon_after_answering,
)
from tests.engine.probes import Edge, OutageMeter, exec_in, log_lines, logs, process_status, refusals

SERVICES = ("model-gateway", "model-gateway-2", "tailnet-edge")


@dataclass
class Deployment:
    engine: Engine
    values: dict
    run: ProgramRun
    key: str
    edge: Edge

    def change(self, edit) -> None:
        """`pulumi up` after editing the settings as deployed now."""
        values = copy.deepcopy(self.values)
        edit(values)
        run = run_program(values, secrets={"masterKey": self.key}, networks=self.engine.network_lookup)
        self.engine.up(run)
        self.values, self.run = values, run


@pytest.fixture(scope="module")
def dev(docker_client, stand_in_images, dev_certs) -> Deployment:
    engine = Engine(docker_client, new_run_id(), host_paths={DEV_CERT_DIR: str(dev_certs["dir"])})
    key, values = new_key(), stack_values("dev")
    run = run_program(values, secrets={"masterKey": key}, networks=engine.network_lookup)
    try:
        engine.up(run)
        address, port = engine.published("tailnet-edge", 8443)
        yield Deployment(engine, values, run, key, Edge(DEV_HOST, address, port, str(dev_certs["cert"])))
    finally:
        engine.teardown()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_network_volume_and_container_is_created(dev, docker_client):
    # What the program registers is pinned by tests/golden/dev/urns.txt; the engine must hold all of it.
    assert_engine_holds_what_the_program_registers(dev.engine, dev.run)
    for name in SERVICES:
        health = docker_client.api.inspect_container(dev.engine.container_id(name))["State"]["Health"]["Status"]
        assert health == "healthy", f"{name} is {health}"
    print(f"\ntime to healthy (s): { {k: round(v, 1) for k, v in dev.engine.time_to_healthy.items()} }")
    assert_reported_healthy_soon_after_answering(dev.engine.health_reports, SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_rendered_files_reach_the_running_services(dev, docker_client, name):
    """Docker refuses uploads into a read-only root; the config writer puts them in a volume."""
    role = Role.EDGE if name == EDGE_CONTAINER else Role.GATEWAY
    for upload in dev.run.config_writers[role].inputs["uploads"]:
        code, content = exec_in(docker_client, dev.engine.container_id(name), "cat", upload["file"])
        assert code == 0 and content == upload["content"], f"{name} does not run the rendered {upload['file']}"


@pytest.mark.parametrize("name", SERVICES)
def test_services_run_non_root_read_only_with_no_capabilities(dev, docker_client, name):
    """Caddy's binary runs although it carries a file capability, with none effective."""
    container_id = dev.engine.container_id(name)
    status = process_status(docker_client, container_id)
    declared = dev.run.containers[name].inputs
    assert status["Uid"].split()[0] == declared["user"].split(":")[0] != "0", f"{name} does not run as its uid"
    assert int(status["CapEff"], 16) == 0, f"{name} runs with effective capabilities {status['CapEff']}"
    assert status["NoNewPrivs"] == "1", f"{name} could gain privileges through setuid or file capabilities"
    code, output = exec_in(docker_client, container_id, "touch", "/written-at-run-time")
    assert code != 0 and "Read-only file system" in output, f"{name} could write to its root filesystem"
    code, limit = exec_in(docker_client, container_id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert code == 0 and int(limit) == int(declared["memory"]) * 1024 * 1024, f"{name} is not held to its memory limit"


def test_caddy_process_is_caddy(dev, docker_client):
    code, cmdline = exec_in(docker_client, dev.engine.container_id("tailnet-edge"), "cat", "/proc/1/cmdline")
    assert code == 0 and cmdline.split("\0")[0] == "caddy", "the edge container runs something other than Caddy"


def test_host_ports_are_published_on_loopback_only(dev, docker_client):
    for name in SERVICES:
        ports = docker_client.api.inspect_container(dev.engine.container_id(name))["NetworkSettings"]["Ports"]
        bound = [b["HostIp"] for bindings in ports.values() for b in bindings or []]
        assert all(ipaddress.ip_address(ip).is_loopback for ip in bound), f"{name} publishes on {bound}"
        # Each LiteLLM replica has its own loopback port (its metrics are its own); the edge its own.
        assert len(bound) == 1, f"{name} publishes {bound}"


def test_api_answers_through_the_published_edge_with_tls(dev):
    models = dev.edge.get("/llm/v1/models", _auth(dev.key))
    assert models.status_code == 200, f"clients could not list models: {models.status_code} {models.text[:300]}"
    assert sorted(m["id"] for m in models.json()["data"]) == ["local-chat", "local-embed"], (
        "clients would see other models than the stack serves"
    )
    assert dev.edge.get("/llm/v1/models").status_code == 401, "no key must be 401"
    assert dev.edge.get("/llm/v1/models", _auth("sk-wrong-0123456789")).status_code == 401, "a wrong key must be 401"
    for closed in ("/llm/openapi.json", "/llm/", "/llm/routes"):
        assert dev.edge.get(closed, _auth(dev.key)).status_code == 404, f"{closed} is open through the edge"


def test_readiness_asks_litellm_across_the_network_and_says_only_ok_or_failing(dev):
    """No llama.cpp runs here: LiteLLM answers, and forwards each backend check to a name that resolves
    to nothing, so every backend reads as failing, within the edge's bounded wait."""
    response = dev.edge.get("/readyz", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json", response.text
    report = response.json()
    assert report["gateway"] == "ok", f"the edge could not reach LiteLLM's liveness over proxy-net: {report}"
    assert report["ready"] is False and report["backends"] == ["failing", "failing"], (
        f"backends that are not running would read as ready: {report}"
    )


def test_access_log_reaches_the_container_log_without_the_key(dev, docker_client):
    marker = new_run_id()
    dev.edge.get(f"/llm/v1/models?{marker}=1", _auth(dev.key))
    container_id = dev.engine.container_id("tailnet-edge")
    lines = log_lines(docker_client, container_id, marker, '"http.log.access')
    text = logs(docker_client, container_id)
    assert len(lines) == 1 and '"client":"master"' in lines[0] and '"status":200' in lines[0], (
        f"no access log line says who called the API: {lines}"
    )
    assert dev.key not in text, "the API key is in the edge's log"


def test_usage_reads_every_replica_on_its_own_loopback_port_with_the_master_key(dev):
    """Each replica counts in its own memory; `usage` must read them all, and only with the master key."""
    dev.edge.get("/llm/v1/models", _auth(dev.key))
    urls = []
    for name in ("model-gateway", "model-gateway-2"):
        address, port = dev.engine.published(name, 11435)
        urls.append(f"http://{address}:{port}/metrics/")
        assert httpx.get(urls[-1], timeout=10).status_code == 401, f"{name}'s metrics need no key on the host"
    argv = [sys.executable, "-m", "tailnet_llm_gateway", "usage", "--format", "json"] + [
        a for u in urls for a in ("--url", u)
    ]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, MASTER_KEY_ENV: dev.key}
    )
    assert result.returncode == 0 and "usage" in json.loads(result.stdout), (
        f"usage could not read the replicas' metrics: {result.stderr}"
    )


def test_the_edge_serves_its_metrics_on_its_network_and_publishes_nothing_for_them(dev, docker_client):
    edge = docker_client.api.inspect_container(dev.engine.container_id("tailnet-edge"))
    assert "9180/tcp" not in (edge["NetworkSettings"]["Ports"] or {}), "the edge's metrics would be on the host"
    (address,) = [n["IPAddress"] for n in edge["NetworkSettings"]["Networks"].values()]
    # LiteLLM's replica shares proxy-net with the edge, as a Prometheus container there would.
    probe = f"import urllib.request;print(urllib.request.urlopen('http://{address}:9180/metrics',timeout=5).read().decode())"
    code, text = exec_in(docker_client, dev.engine.container_id("model-gateway"), "python3", "-c", probe)
    assert code == 0 and "caddy_http_request_duration_seconds" in text, (
        f"a container on the edge's network could not read its metrics: {text[-500:]}"
    )


def test_edge_advertises_no_http3(dev):
    """Alt-Svc would name Caddy's in-container port 8443 over UDP, which nothing publishes."""
    response = dev.edge.get("/healthz")
    assert response.status_code == 200 and "alt-svc" not in response.headers, response.headers.get("alt-svc")


def test_caddy_writes_its_data_directory(dev, docker_client):
    """/config and /data are writable by Caddy's uid (they were root-owned)."""
    code, listing = exec_in(docker_client, dev.engine.container_id("tailnet-edge"), "ls", "/data/caddy")
    assert code == 0 and "instance.uuid" in listing, f"Caddy could not write its data directory: {listing}"


def _processes_of(docker_client, dev, user: str, count: int) -> str:
    """A container of another image running `count` processes as `user`, once they all run (bounded)."""
    neighbour = docker_client.api.create_container(
        "docker.io/library/caddy:2.11.7",
        user=user,
        labels=dev.engine.sub.label,
        entrypoint=["/bin/sh", "-c", f"for i in $(seq {count}); do sleep 120 & done; wait"],
        host_config=docker_client.api.create_host_config(network_mode="none"),
    )["Id"]
    docker_client.api.start(neighbour)
    deadline = time.monotonic() + 30
    while len(docker_client.api.top(neighbour)["Processes"]) < count + 1:
        assert time.monotonic() < deadline, f"the neighbour did not start its {count} processes within 30 s"
        time.sleep(0.2)
    return neighbour


@pytest.mark.parametrize(("whose", "shares_the_limit"), [("distroless nonroot", False), ("the edge's own uid", True)])
def test_processes_of_other_images_do_not_count_against_the_edge(dev, docker_client, whose, shares_the_limit):
    """Nproc counts per uid on the host; 65532 is distroless' `nonroot`, shared by many images.
    The control case runs the neighbour as the edge's own uid: then the edge can start nothing, which shows
    the limit is real and that this test sees it."""
    limit = int(dev.run.containers["tailnet-edge"].inputs["ulimits"][0]["hard"])
    user = dev.run.containers["tailnet-edge"].inputs["user"] if shares_the_limit else "65532:65532"
    neighbour = _processes_of(docker_client, dev, user, limit + 10)
    try:
        code, output = exec_in(docker_client, dev.engine.container_id("tailnet-edge"), "sh", "-c", "echo alive")
    finally:
        docker_client.api.remove_container(neighbour, force=True)
    started = code == 0 and "alive" in output
    assert started != shares_the_limit, f"with {limit + 10} processes of {whose} ({user}) running, the edge " + (
        "could still start a process: the limit does not bind" if shares_the_limit else f"could not: {output}"
    )


def _healthz_says(values: dict, text: str) -> None:
    for route in values["routes"]:
        if route["path"] == "/healthz":
            route["respond"] = text


def _healthz_says_ready(values: dict) -> None:
    _healthz_says(values, "ready")


def _containers(dev) -> dict[str, str]:
    return {name: dev.engine.container_id(name) for name in SERVICES}


def test_a_caddyfile_change_reaches_the_running_edge_without_replacing_anything(dev, docker_client):
    before = _containers(dev)
    # A client that keeps its connection, as SDKs and browsers do (a connection opened in the very
    # millisecond of a reload can be reset: docs/operations.md has the figures).
    with (
        dev.edge.client() as client,
        OutageMeter(lambda: dev.edge.get("/healthz", client=client).status_code == 200) as meter,
    ):
        dev.change(_healthz_says_ready)
    assert dev.edge.get("/healthz").text == "ready", "the running edge still serves the old Caddyfile"
    assert _containers(dev) == before, "an edge change replaced a container (the edge itself, or LiteLLM)"
    assert not meter.failures, (
        f"the edge failed answers while it loaded the new Caddyfile: {meter.failures} {meter.reasons[:3]}"
    )
    code, live = exec_in(docker_client, before["tailnet-edge"], "wget", "-qO-", "http://127.0.0.1:8080/config-id")
    assert code == 0 and live == dev.run.exports["edgeConfigId"], f"the edge reports config {live!r}"


def test_a_caddyfile_the_running_caddy_refuses_fails_up_naming_it_and_the_old_one_keeps_serving(dev, docker_client):
    """A certificate file that is not in the cert directory: the settings cannot know, Caddy refuses to load."""
    served, edge = dev.run.exports["edgeConfigId"], dev.engine.container_id("tailnet-edge")
    with pytest.raises(EngineError, match=r"did not take the new Caddyfile.*missing\.crt"):
        dev.change(lambda values: values["tls"].update(certFile="missing.crt"))
    code, live = exec_in(docker_client, edge, "wget", "-qO-", "http://127.0.0.1:8080/config-id")
    assert code == 0 and live == served, f"the edge serves {live!r}, not the config it had ({served})"
    assert dev.edge.get("/llm/v1/models", _auth(dev.key)).status_code == 200, "the edge stopped answering the API"
    dev.change(lambda values: None)  # the operator runs `pulumi up` again with good settings
    deadline = time.monotonic() + 10
    while (live := exec_in(docker_client, edge, "wget", "-qO-", "http://127.0.0.1:8080/config-id")[1]) != served:
        assert time.monotonic() < deadline, f"the edge did not come back to the good config: {live!r}"
        time.sleep(0.5)


def test_a_new_caddyfile_is_loaded_after_the_file_was_missing_for_a_moment(dev, docker_client, stand_in_images):
    """The writer's copy removes the old file before it writes the new one. Caddy's own file watcher stops for
    good at the first poll that cannot read the file (or adapt it), and the edge would never load another:
    here the file is gone for two of its polls, then `pulumi up` writes a new one, which must be loaded."""
    edge = dev.engine.container_id("tailnet-edge")
    volume = dev.engine.sub.name("tailnet-edge-config")
    image = next(image for tag, image in stand_in_images.items() if "/caddy:" in tag)
    docker_client.containers.run(
        image,
        entrypoint=[
            "sh",
            "-c",
            "mv /rendered/Caddyfile /rendered/.moved && sleep 2.5 && mv /rendered/.moved /rendered/Caddyfile",
        ],
        user="0",
        volumes={volume: {"bind": "/rendered", "mode": "rw"}},
        labels={TEST_LABEL: "moved-caddyfile"},
        remove=True,
    )
    dev.change(lambda values: _healthz_says(values, "loaded after the file was missing"))
    try:
        assert dev.edge.get("/healthz").text == "loaded after the file was missing", "the edge loads no new Caddyfile"
        code, live = exec_in(docker_client, edge, "wget", "-qO-", "http://127.0.0.1:8080/config-id")
        assert code == 0 and live == dev.run.exports["edgeConfigId"], f"the edge reports config {live!r}"
    finally:
        dev.change(_healthz_says_ready)  # as the tests after this one find it


def test_a_litellm_config_change_rolls_the_replicas_and_leaves_the_edge(dev, docker_client):
    before = _containers(dev)
    with (
        dev.edge.client(timeout=30) as client,
        OutageMeter(lambda: dev.edge.get("/llm/v1/models", _auth(dev.key), client=client).status_code == 200) as meter,
    ):
        dev.change(lambda values: values["timeouts"].update(request=1700))
    after = _containers(dev)
    for name in ("model-gateway", "model-gateway-2"):
        code, config = exec_in(docker_client, after[name], "cat", "/etc/litellm/config.yaml")
        assert code == 0 and "request_timeout: 1700" in config, f"{name} still runs the old config"
        assert after[name] != before[name], f"{name} was not replaced"
    assert after["tailnet-edge"] == before["tailnet-edge"], "a LiteLLM-only change replaced the edge"
    assert not meter.failures, f"the API failed while the replicas were replaced in turn: {meter.failures}"


def test_no_container_restarted_and_nothing_was_refused(dev, docker_client):
    for name in SERVICES:
        container_id = dev.engine.container_id(name)
        assert docker_client.api.inspect_container(container_id)["RestartCount"] == 0, f"{name} restarted"
        refused = refusals(logs(docker_client, container_id))
        assert not refused, f"{name} was refused something: {refused[:5]}"
        usage = docker_client.api.stats(container_id, stream=False)["memory_stats"]["usage"]
        print(f"\n{name}: {usage / 2**20:.0f} MiB in use")
