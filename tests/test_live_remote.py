"""Backends on other tailnet machines, with the real Caddy and LiteLLM on loopback, in tailnet-node mode:
the edge's forwarders dial through the node's SOCKS5 proxy (a stand-in on loopback, harness/socks5.py),
and the "other machines" are fakes on loopback ports.

(host-bind mode, where the edge dials through the host's routing, runs on the real engine with a stand-in
tailnet: tests/engine/test_remote_backends.py.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from harness import fakes
from harness.loopback import LoopbackStack
from harness.ports import free_port
from harness.processes import seconds_until
from harness.socks5 import Socks5StandIn
from harness.stacks import new_project, remote_stack_values

STACK = "remote-node"
SPREAD, REMOTE_ONLY = "local-chat", "remote-chat"


@dataclass
class RemoteEdge:
    stack: LoopbackStack
    base_url: str
    proxy: Socks5StandIn
    fakes: dict[str, fakes.FakeServer]

    def chat(self, model: str) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "ping"}]}
        headers = {"Authorization": f"Bearer {self.stack.master_key}"}
        return httpx.post(f"{self.base_url}/llm/v1/chat/completions", json=body, headers=headers, timeout=60)

    def remote_address(self, service: str) -> str:
        return f"127.0.0.1:{self.stack.ports[service]}"

    def forwarder(self, index: int) -> str:
        assert self.stack.forward_port is not None
        return f"http://127.0.0.1:{self.stack.forward_port + index}"


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Iterator[RemoteEdge]:
    work = tmp_path_factory.mktemp("remote-node")
    project = new_project(work / "project", STACK, remote_stack_values("dev-node"))
    proxy = Socks5StandIn(free_port()).start()
    stack = LoopbackStack(STACK, work, project=project, egress_port=proxy.port)
    servers = {
        name: fakes.FakeServer(fakes.OpenAIBackendHandler, stack.ports[name], name).start()
        for name in ("llamacpp", "llamacpp-embed", "llamacpp-gpu-2", "llamacpp-gpu-3")
    }
    try:
        edge = RemoteEdge(stack, stack.start(), proxy, servers)
        # The edge's first health check of each machine decides whether it is used (Caddy starts a dial
        # address it has not checked yet as unhealthy).
        assert seconds_until(lambda: _readiness(edge)["ready"] is True, 20) is not None, "the stack never became ready"
        yield edge
    finally:
        stack.stop()
        for server in servers.values():
            server.stop()
        proxy.stop()


def test_a_remote_only_model_answers_through_the_nodes_proxy(remote):
    gpu3 = remote.fakes["llamacpp-gpu-3"].httpd
    before = len(gpu3.served)
    response = remote.chat(REMOTE_ONLY)
    assert response.status_code == 200, f"a model on another machine does not answer: {response.text[:300]}"
    assert gpu3.served[before:] == ["POST /v1/chat/completions"], "the answer did not come from the remote machine"
    assert remote.remote_address("llamacpp-gpu-3") in remote.proxy.asked, (
        "the edge reached the other machine without the node's proxy: in a container it could not"
    )


def _credential_passed_on(remote: RemoteEdge, forwarder: str) -> str | None:
    """What gpu-2 receives as Authorization when LiteLLM asks it through `forwarder` with the edge's key."""
    gpu2 = remote.fakes["llamacpp-gpu-2"].httpd
    before = len(gpu2.credentials)
    body = {"model": SPREAD, "messages": [{"role": "user", "content": "ping"}]}
    headers = {"Authorization": f"Bearer {_edge_key(remote)}"}
    response = httpx.post(f"{forwarder}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200 and len(gpu2.credentials) == before + 1, response.text[:300]
    return gpu2.credentials[-1]


def test_no_key_reaches_a_remote_backend(remote):
    gpu3 = remote.fakes["llamacpp-gpu-3"].httpd
    before = len(gpu3.credentials)
    assert remote.chat(REMOTE_ONLY).status_code == 200
    passed_on = [*gpu3.credentials[before:], _credential_passed_on(remote, remote.forwarder(0))]
    assert passed_on == [None, None], "a remote machine received a credential (the edge's key would leave the host)"


CREDENTIALS = ("none", "a wrong key", "the master key", "the key without Bearer", "two headers")


def _hostile_headers(remote: RemoteEdge, credential: str) -> list[tuple[str, str]]:
    """What a caller on the edge's network could send a forwarder instead of the edge's key."""
    return {
        "none": [],
        "a wrong key": [("Authorization", "Bearer sk-not-the-edge-key")],
        "the master key": [("Authorization", f"Bearer {remote.stack.master_key}")],
        "the key without Bearer": [("Authorization", _edge_key(remote))],
        "two headers": [("Authorization", "Bearer sk-not-the-edge-key"), ("Connection", "Authorization")],
    }[credential]


def _forwarder_refuses(remote: RemoteEdge, forwarder: str, credential: str) -> str | None:
    """None if the forwarder refuses this caller and the machine sees nothing; else what went wrong."""
    gpu2 = remote.fakes["llamacpp-gpu-2"].httpd
    before = len(gpu2.served)
    response = httpx.get(f"{forwarder}/v1/models", headers=_hostile_headers(remote, credential), timeout=10)
    if response.status_code != 403:
        return f"it answered {response.status_code}"
    if len(gpu2.served) != before:
        return "the refused request still reached the machine"
    return None


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_the_forwarder_refuses_a_caller_without_the_edge_key(remote, credential):
    problem = _forwarder_refuses(remote, remote.forwarder(0), credential)
    assert problem is None, (
        f"the forwarder to another machine let a caller with {credential} through ({problem}): anything on the "
        "edge's network could use the gateway's tailnet access"
    )


def _mutant_forwarder(remote: RemoteEdge, name: str, edit) -> str:
    """The first forwarder of another edge of the same stack, its Caddyfile broken by `edit`."""
    remote.stack.edge(name, edit=edit)
    forwarder = f"http://127.0.0.1:{remote.stack.forward_ports[name]}"
    # Its first health check of the machine decides when it forwards at all.
    key = {"Authorization": f"Bearer {_edge_key(remote)}"}
    if (
        seconds_until(lambda: httpx.get(f"{forwarder}/v1/models", headers=key, timeout=5).status_code == 200, 15)
        is None
    ):
        raise AssertionError("the mutant's forwarder never forwarded")
    return forwarder


def test_a_forwarder_that_passes_the_key_on_fails_the_probe(remote):
    forwarder = _mutant_forwarder(
        remote, "mutant-passes-key", lambda text: text.replace("header_up -Authorization", "")
    )
    assert _credential_passed_on(remote, forwarder) is not None, "the probe no longer guards the key's removal"


def test_a_forwarder_without_its_key_check_fails_the_probe(remote):
    forwarder = _mutant_forwarder(remote, "mutant-no-check", lambda text: text.replace("respond @not_gateway 403", ""))
    assert _forwarder_refuses(remote, forwarder, "none") is not None, "the probe no longer guards the key check"


def _edge_key(remote: RemoteEdge) -> str:
    keys = next(p for p in remote.stack.work.rglob("keys") if p.is_dir())
    return (keys / "edge").read_text()


def test_readiness_reports_each_remote_backend(remote):
    report = httpx.get(f"{remote.base_url}/readyz", timeout=15).json()
    assert report["ready"] is True and report["backends"] == ["ok", "ok", "ok", "ok"], (
        f"the readiness report does not show the remote backends ok: {report}"
    )


def _readiness(remote: RemoteEdge) -> dict:
    return httpx.get(f"{remote.base_url}/readyz", timeout=15).json()


def test_a_machine_that_drops_costs_no_failed_request_and_comes_back_on_its_own(remote):
    gpu2 = remote.remote_address("llamacpp-gpu-2")
    results: list[tuple[int, float]] = []

    def steady(until: float) -> None:
        while time.monotonic() < until:
            sent = time.monotonic()
            results.append((remote.chat(SPREAD).status_code, time.monotonic() - sent))

    remote.proxy.drop(gpu2)
    try:
        dropped = time.monotonic()
        threads = [threading.Thread(target=steady, args=(dropped + 8,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        noticed = seconds_until(lambda: _readiness(remote)["backends"].count("failing") == 1, 20)
        for thread in threads:
            thread.join(timeout=60)
    finally:
        remote.proxy.rejoin(gpu2)
    back = seconds_until(lambda: _readiness(remote)["ready"] is True, 20)
    statuses = [status for status, _ in results]
    print(
        f"\nmachine dropped (tailnet-node): {len(results)} requests, {len(statuses) - statuses.count(200)} failed, "
        f"worst {max(t for _, t in results):.1f} s; readiness said failing after {noticed} s, ok again "
        f"{back} s after it rejoined"
    )
    assert statuses and set(statuses) == {200}, f"requests failed while a remote machine was gone: {statuses}"
    assert noticed is not None, "the readiness report never showed the dropped machine failing"
    assert back is not None, "the readiness report stayed failing after the machine came back"
