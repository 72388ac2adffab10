"""Backends on other tailnet machines, on the real engine: the remote stack (host-bind) on the test tailnet
(harness/testnet), and the local llama.cpp as a fake in a container.

The host's tailscaled runs in kernel mode with a real `tailscale0`, kept in a network namespace of its own
that this host routes the machines' addresses through (so nothing else on this machine is touched); the
edge's forwarder dials the machines through the host's routing and Docker's NAT, as on a host whose
tailscale0 routes the tailnet. Each machine is a real tailscaled in a namespace of its own with fakes on its
model port and on ssh, http and another port; what it accepts from the gateway is its packet filter, as the
control server compiles it from the merged policy with headscale's policy engine. (tailnet-node mode dials
through the node's SOCKS5 server instead: tests/engine/test_real_tailnet.py.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from harness.engine import DEV_CERT_DIR, DEV_HOST, new_run_id
from harness.engine.backends import fake_backend
from harness.engine.provider import Engine
from harness.keys import new_key
from harness.ports import free_port
from harness.processes import seconds_until
from harness.program_run import MOCK_AUTH_KEY, run_program
from harness.stacks import REMOTE_PORT, remote_stack_values
from harness.testnet import build
from harness.testnet.device import Device
from harness.testnet.namespaces import UPLINK, can_make_namespaces, remove_stale_machines
from harness.testnet.tailnet import Tailnet, join_host_bind, policy_for
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import Topology, build_topology
from tests.conftest import cannot_run
from tests.engine.probes import Edge, exec_in

SPREAD, REMOTE_ONLY = "local-chat", "remote-chat"
DOMAIN = "tail0a1b2c.ts.net"
# Ports every machine also serves (ssh, http, another service), which the gateway must not reach.
OTHER_PORTS = (22, 80, 8081)
# gpu-2 serves part of local-chat; gpu-3 all of remote-chat.
SPREAD_MACHINE, REMOTE_MACHINE = "gpu-2", "gpu-3"


@dataclass
class Remote:
    engine: Engine
    topology: Topology
    tailnet: Tailnet
    edge: Edge
    key: str

    def machine(self, alias: str) -> Device:
        return self.tailnet.devices[alias]

    def chat(self, model: str, client: httpx.Client | None = None, timeout: float = 60) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "ping"}]}
        own = client is None
        client = client or self.edge.client(timeout)
        try:
            return client.post(
                f"https://{self.edge.address}:{self.edge.port}/llm/v1/chat/completions",
                json=body,
                headers={"Host": DEV_HOST, "Authorization": f"Bearer {self.key}"},
                extensions={"sni_hostname": DEV_HOST},
                timeout=timeout,
            )
        finally:
            if own:
                client.close()

    def readiness(self) -> dict:
        return self.edge.get("/readyz", timeout=15).json()

    def backend_index(self, machine: str) -> int:
        backends = self.topology.readiness_backends
        return next(i for i, b in enumerate(backends) if b.service.machine and b.service.machine.name == machine)


def _real_tailnet_values() -> dict:
    """The remote stack with the addresses the test control server gives, in the order the devices join: the
    host first (100.64.0.1), then the machines in name order."""
    values = remote_stack_values("dev")
    values["tailnetIp"] = "100.64.0.1"
    for index, alias in enumerate(sorted(values["machines"]), start=2):
        values["machines"][alias]["address"] = f"100.64.0.{index}"
    return values


@pytest.fixture(scope="module")
def remote(docker_client, stand_in_images, dev_certs, tmp_path_factory):
    reason = can_make_namespaces()
    if reason is not None:
        cannot_run(f"the test tailnet's namespaces cannot be made: {reason}")
    values = _real_tailnet_values()
    topology = build_topology(Settings.from_mapping(values))
    run_id = new_run_id()
    remove_stale_machines()
    tailnet = Tailnet(
        build.binaries(),
        tmp_path_factory.mktemp("tailnet"),
        f"{UPLINK}:{free_port()}",
        DOMAIN,
        policy_for(values),
        MOCK_AUTH_KEY,
        {},
    )
    engine = Engine(docker_client, run_id, host_paths={DEV_CERT_DIR: str(dev_certs["dir"])})
    try:
        machines = {
            m.alias: (m.address, (*m.ports, *OTHER_PORTS))
            for m in sorted(topology.tailnet.machines, key=lambda m: m.alias)
        }
        join_host_bind(tailnet, values["tailnetIp"], machines)
        key = new_key()
        engine.up(run_program(values, secrets={"masterKey": key}, networks=engine.network_lookup))
        for local in ("llamacpp", "llamacpp-embed"):
            fake_backend(docker_client, engine, local)
        address, port = engine.published("tailnet-edge", 8443)
        deployed = Remote(engine, topology, tailnet, Edge(DEV_HOST, address, port, str(dev_certs["cert"])), key)
        assert seconds_until(lambda: deployed.readiness()["ready"] is True, 30) is not None, (
            "the stack never became ready"
        )
        yield deployed
    finally:
        engine.teardown()
        tailnet.close()


def _served_chats(remote: Remote, machine: str) -> int:
    served = remote.machine(machine).served(REMOTE_PORT)
    return sum(1 for line in served if line == "POST /v1/chat/completions")


def test_a_remote_only_model_answers_through_the_edge(remote):
    before = _served_chats(remote, REMOTE_MACHINE)
    response = remote.chat(REMOTE_ONLY)
    assert response.status_code == 200, f"a model on another machine does not answer: {response.text[:300]}"
    assert _served_chats(remote, REMOTE_MACHINE) == before + 1, "the answer did not come from the remote machine"


_CONNECT = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        print(target, "open")
    except OSError as error:
        print(target, "closed", type(error).__name__)
"""


def test_nothing_but_the_granted_ports_is_reachable_from_the_gateway(remote, docker_client):
    targets = [f"{m.address}:{p}" for m in remote.topology.tailnet.machines for p in (REMOTE_PORT, *OTHER_PORTS)]
    for container in ("model-gateway", "tailnet-edge"):
        if container == "tailnet-edge":
            # Every port of a machine answers HTTP; `timeout` bounds the wait for a dropped SYN (the stand-in
            # image's static busybox wget crashes on its own -T).
            results = {}
            for target in targets:
                code, output = exec_in(
                    docker_client,
                    remote.engine.container_id(container),
                    *("busybox", "timeout", "3", "wget", "-q", "-O", "/dev/null", f"http://{target}/v1/models"),
                )
                results[target] = "open" if code == 0 else f"closed ({code} {output.strip()})"
        else:
            code, output = exec_in(
                docker_client, remote.engine.container_id(container), "python3", "-c", _CONNECT, *targets
            )
            assert code == 0, output
            results = {line.split()[0]: line.split()[1] for line in output.splitlines() if line.strip()}
        for target in targets:
            expected = "open" if target.endswith(f":{REMOTE_PORT}") else "closed"
            assert str(results.get(target)).split(" ")[0] == expected, (
                f"{container} finds {target} {results.get(target)}: the gateway would reach more of another "
                "machine than the policy grants"
            )


def test_the_forwarder_refuses_a_caller_without_the_edge_key(remote, docker_client):
    edge = remote.engine.container_id("tailnet-edge")
    for headers in (
        [],
        ["--header", "Authorization: Bearer not-the-edge-key"],
        ["--header", f"Authorization: Bearer {remote.key}"],
    ):
        code, output = exec_in(
            docker_client,
            edge,
            "wget",
            "-q",
            "-O",
            "-",
            "-S",
            *headers,
            f"http://127.0.0.1:{remote.topology.forwards[0].port}/v1/models",
        )
        assert code != 0 and "403" in output, (
            f"the forwarder to another machine answered a caller without the edge's key: {output[:200]}"
        )


def test_readiness_reports_remote_backends(remote):
    report = remote.readiness()
    assert report["ready"] is True and report["backends"] == ["ok"] * len(remote.topology.readiness_backends), (
        f"the readiness report does not show the remote backends as ok: {report}"
    )


@dataclass
class Outage:
    """A fault of the spread model's remote machine under steady load through the edge, and its recovery."""

    requests: int
    failed: list[tuple[float, int]]  # (seconds after the fault, status) of each failed request
    worst_s: float  # the slowest request sent while the machine was out
    reported_s: float | None  # until readiness said "failing"
    used_again_s: float | None  # from recovery until LiteLLM sent it a request again
    ready_again_s: float | None  # from recovery until readiness said ready

    def line(self, fault: str) -> str:
        return (
            f"\nremote machine {fault}: {self.requests} requests, {len(self.failed)} failed; worst latency while "
            f"it was out {self.worst_s:.2f} s; readiness said failing after {self.reported_s} s; after it was "
            f"back LiteLLM used it again after {self.used_again_s} s and readiness was ok after {self.ready_again_s} s"
        )


def _outage(remote: Remote, fault, recover, out_s: float = 12) -> Outage:
    results: list[tuple[float, int, float]] = []
    stop = threading.Event()

    def steady() -> None:
        with remote.edge.client(60) as client:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    status = remote.chat(SPREAD, client).status_code
                except httpx.HTTPError:
                    status = 0
                results.append((sent, status, time.monotonic() - sent))
                time.sleep(0.05)

    threads = [threading.Thread(target=steady) for _ in range(2)]
    for thread in threads:
        thread.start()
    index = remote.backend_index(SPREAD_MACHINE)
    try:
        time.sleep(3)
        assert _served_chats(remote, SPREAD_MACHINE) > 0, "the spread model never used the remote machine"
        began = time.monotonic()
        fault()
        reported = seconds_until(lambda: remote.readiness()["backends"][index] == "failing", 30)
        time.sleep(max(0.0, out_s - (time.monotonic() - began)))
        recover()
        recovered = time.monotonic()
        at_recovery = _served_chats(remote, SPREAD_MACHINE)
        used_again = seconds_until(lambda: _served_chats(remote, SPREAD_MACHINE) > at_recovery, 90)
        ready_again = seconds_until(lambda: remote.readiness()["ready"] is True, 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
    return Outage(
        requests=len(results),
        failed=[(round(t - began, 1), status) for t, status, _ in results if status != 200],
        worst_s=max((took for t, _, took in results if began <= t < recovered), default=0.0),
        reported_s=reported,
        used_again_s=used_again,
        ready_again_s=ready_again,
    )


def _assert_survived(outage: Outage, fault: str) -> None:
    assert not outage.failed, f"requests failed when a remote machine {fault} (s after, status): {outage.failed[:10]}"
    assert outage.reported_s is not None, f"the readiness report never showed the machine that {fault} failing"
    assert outage.used_again_s is not None, "the machine came back but LiteLLM never used it again"
    assert outage.ready_again_s is not None, "the readiness report stayed failing after the machine came back"


def test_a_machine_that_drops_costs_no_failed_request_and_comes_back_on_its_own(remote):
    """Gone from the tailnet: it answers nothing, refuses nothing."""
    machine = remote.machine(SPREAD_MACHINE)
    outage = _outage(remote, machine.drop, machine.rejoin)
    print(outage.line("dropped"))
    _assert_survived(outage, "dropped")


def test_a_killed_remote_backend_costs_no_failed_request_and_is_used_again(remote):
    """The machine stays; its llama.cpp is killed (connections refused) and started again."""
    machine = remote.machine(SPREAD_MACHINE)
    outage = _outage(remote, lambda: machine.kill(REMOTE_PORT), lambda: remote.tailnet.serve(machine, REMOTE_PORT))
    print(outage.line("had its backend killed"))
    _assert_survived(outage, "had its backend killed")
