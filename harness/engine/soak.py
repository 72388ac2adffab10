"""The soak: the stack on the real engine under steady load and long streams, while an operator changes it.

`soak()` deploys the clients' stack (host-bind: the edge is published, with TLS, on a loopback stand-in
for the tailnet address), with fake llama.cpp backends in containers on its backend network, then runs
each operation in turn. For each, a window opens: long streams start (one word a second), the operation
runs (`pulumi up` of edited settings, a backend restart, a dockerd restart), and the window closes when
the streams have ended. Meanwhile steady clients send short completions through the edge. It reports, per
operation: requests sent and failed, streams started and cut (and whether a cut stream ended with an
error the client saw, or cleanly), the worst latency of a short request, and how long the operation took.
The engine test asserts the targets; the benchmark prints the same table.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx

from harness.engine import DEV_CERT_DIR, new_run_id
from harness.engine.backends import fake_backend
from harness.engine.provider import CONTAINER, Engine
from harness.engine.traffic import WORD_PAUSE_MS, Clients, Window, window
from harness.keys import new_key
from harness.ports import free_port
from harness.program_run import MOCK_AUTH_KEY, ProgramRun, run_program
from harness.stacks import REMOTE_PORT, clients_stack_values
from harness.testnet import build
from harness.testnet.namespaces import UPLINK, can_make_namespaces, remove_stale_machines
from harness.testnet.tailnet import Tailnet, join_host_bind, policy_for
from tailnet_llm_gateway.client_config import client_output

BACKENDS = ("llamacpp", "llamacpp-b", "llamacpp-embed")
# The machine a backend is added on (a real tailscaled in a namespace), streaming as the local fakes do.
REMOTE_MACHINE, REMOTE_ADDRESS = "gpu-2", "100.64.0.2"
DOMAIN = "tail0a1b2c.ts.net"
STREAM_PAUSE_ARGS = ("--stream-pause-ms", str(WORD_PAUSE_MS))


@dataclass
class Soaked:
    engine: Engine
    values: dict
    run: ProgramRun
    master_key: str
    backends: dict[str, str]
    clients: Clients
    # The test tailnet: the host's own tailscaled (kernel mode, in a namespace) and another machine, for a
    # model's backend added there (None: this machine cannot make namespaces; that operation is left out).
    tailnet: Tailnet | None


@contextmanager
def soaked_stack(client: docker.DockerClient, certs: dict[str, Path], replicas: int | None) -> Iterator[Soaked]:
    run_id = new_run_id()
    engine = Engine(client, run_id, host_paths={DEV_CERT_DIR: str(certs["dir"])}, log=lambda _: None)
    values = clients_stack_values("dev")
    # The address the test control server gives the host, the first device to join.
    values["tailnetIp"] = "100.64.0.1"
    if replicas is not None:
        values["gateway"]["replicas"] = replicas
    master_key = new_key()
    tailnet = None
    try:
        if can_make_namespaces() is None:
            tailnet = _tailnet(values)
        run = run_program(values, secrets={"masterKey": master_key}, networks=engine.network_lookup)
        engine.up(run)
        backends = {name: fake_backend(client, engine, name) for name in BACKENDS}
        address, port = engine.published("tailnet-edge", 8443)
        key = run.exports[client_output("laptop")]["key"]
        clients = Clients(f"https://{address}:{port}/llm/v1", str(certs["cert"]), key)
        soaked = Soaked(engine, values, run, master_key, backends, clients, tailnet)
        deadline = time.monotonic() + 60
        while not _chat_answers(soaked):  # the backends have just started
            if time.monotonic() > deadline:
                raise RuntimeError("the soak's stack did not answer a completion within 60 s")
            time.sleep(0.5)
        yield soaked
    finally:
        engine.teardown()
        if tailnet is not None:
            tailnet.close()


def _tailnet(values: dict) -> Tailnet:
    """The host (kernel-mode tailscaled, 100.64.0.1) and the machine a backend will be added on (100.64.0.2),
    which this host routes through the host's tailscale0; the policy as the settings render it."""
    remove_stale_machines()
    work = Path(tempfile.mkdtemp(prefix="soak-tailnet-"))
    tailnet = Tailnet(build.binaries(), work, f"{UPLINK}:{free_port()}", DOMAIN, policy_for(values), MOCK_AUTH_KEY, {})
    try:
        join_host_bind(
            tailnet, values["tailnetIp"], {REMOTE_MACHINE: (REMOTE_ADDRESS, (REMOTE_PORT,))}, STREAM_PAUSE_ARGS
        )
    except BaseException:
        tailnet.close()
        raise
    return tailnet


def apply(soaked: Soaked, edit: Callable[[dict], None]) -> None:
    """`pulumi up` after editing the settings as deployed now."""
    values = copy.deepcopy(soaked.values)
    edit(values)
    run = run_program(values, secrets={"masterKey": soaked.master_key}, networks=soaked.engine.network_lookup)
    soaked.engine.up(run)
    soaked.values, soaked.run = values, run


def restart_dockerd(timeout_s: float = 90) -> None:
    """Stop dockerd as a host shutdown would and start it again with the command line it had."""
    pid = int(subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=True).stdout.split()[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not stop within {timeout_s:.0f} s")
        time.sleep(0.2)
    with open("/var/log/tailnet-llm-gateway-dockerd.log", "ab") as log:
        subprocess.Popen([a.decode() for a in argv], stdout=log, stderr=log, start_new_session=True)
    while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not answer within {timeout_s:.0f} s of its restart")
        time.sleep(0.5)


def _chat_answers(soaked: Soaked) -> bool:
    body = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
    try:
        with soaked.clients._client() as client:
            return soaked.clients._post(client, body).status_code == 200
    except httpx.HTTPError:
        return False


def _runs(deployed) -> bool:
    inputs = deployed.resource.inputs
    return deployed.resource.type == CONTAINER and inputs.get("start", True) and inputs.get("healthcheck")


def _healthy(client: docker.DockerClient, container: str) -> bool:
    return (client.api.inspect_container(container)["State"].get("Health") or {}).get("Status") == "healthy"


def _api_answers(soaked: Soaked) -> bool:
    try:
        with soaked.clients._client() as client:
            response = client.get(
                f"{soaked.clients.url}/models", extensions={"sni_hostname": soaked.clients.server_name}, timeout=5
            )
        return response.status_code == 200
    except httpx.HTTPError:
        return False


SOAK_LIMITS = {"requestsPerMinute": 100_000, "tokensPerMinute": 100_000_000, "concurrent": 100}


def operations(
    soaked: Soaked, client: docker.DockerClient, dockerd: bool
) -> list[tuple[str, Callable[[], float | None]]]:
    """The operator's changes, in the order the soak makes them (edge, keys, gateway, faults)."""

    def edit(change: Callable[[dict], None]) -> Callable[[], None]:
        return lambda: apply(soaked, change)

    def add_route(values: dict) -> None:
        values["routes"].append({"path": "/status", "respond": "up", "auth": "none"})

    def weights(values: dict) -> None:
        values["models"]["local-chat"]["backends"] = [
            {"service": "llamacpp", "weight": 3},
            {"service": "llamacpp-b", "weight": 1},
        ]

    def add_remote_backend() -> None:
        def edit(values: dict) -> None:
            values["machines"] = {REMOTE_MACHINE: {"address": REMOTE_ADDRESS}}
            values["services"][f"llamacpp-{REMOTE_MACHINE}"] = {"port": REMOTE_PORT, "machine": REMOTE_MACHINE}
            values["models"]["local-chat"]["backends"].append({"service": f"llamacpp-{REMOTE_MACHINE}"})

        assert soaked.tailnet is not None
        edited = copy.deepcopy(soaked.values)
        edit(edited)
        # The tailnet applies the new grant before the gateway needs it (`pulumi up` applies the policy too).
        soaked.tailnet.set_policy(policy_for(edited))
        apply(soaked, edit)

    def restart_backend() -> None:
        client.api.restart(soaked.backends["llamacpp-b"], timeout=5)

    def restart_engine() -> float:
        began = time.monotonic()
        restart_dockerd()
        while not _api_answers(soaked):
            if time.monotonic() - began > 180:
                raise RuntimeError("the API did not answer within 180 s of a dockerd restart")
            time.sleep(0.25)
        back = time.monotonic() - began
        services = [d.docker_id for d in soaked.engine.state.values() if _runs(d)]
        while not all(_healthy(client, container) for container in services):
            if time.monotonic() - began > 180:
                raise RuntimeError("not every container was healthy again within 180 s of a dockerd restart")
            time.sleep(0.5)
        return back

    steps: list[tuple[str, Callable[[], float | None]]] = [
        ("add a client", edit(lambda v: v["clients"].update(tablet={}))),
        ("rotate a client's key", edit(lambda v: v["clients"]["ci"].update(keyVersion=2))),
        ("revoke a client", edit(lambda v: v["clients"].pop("tablet"))),
        # Limits the soak's clients never reach: the change itself (a limit table re-read, the edge sending
        # each client to one replica from then on) must cost nothing.
        ("set a client's limits", edit(lambda v: v["clients"]["ci"].update(limits=SOAK_LIMITS))),
        ("change a route", edit(add_route)),
        ("change a model's backends", edit(weights)),
        *([("add a backend on another machine", add_remote_backend)] if soaked.tailnet is not None else []),
        ("change a LiteLLM timeout", edit(lambda v: v["timeouts"].update(request=1700))),
        ("restart a backend", restart_backend),
    ]
    if dockerd:
        steps.append(("restart dockerd", restart_engine))
    return steps


@dataclass
class Soak:
    windows: list[Window]
    # Seconds from start to healthy, per container, when the stack was first deployed.
    time_to_healthy: dict[str, float]


def soak(
    client: docker.DockerClient,
    certs: dict[str, Path],
    replicas: int | None = None,
    dockerd: bool = True,
    only: tuple[str, ...] | None = None,
) -> Soak:
    """Every operation (or those named in `only`) in turn under load; the windows, in order."""
    with soaked_stack(client, certs, replicas) as soaked:
        healthy = dict(soaked.engine.time_to_healthy)
        soaked.clients.start()
        try:
            windows = [
                window(soaked.clients, name, operation)
                for name, operation in operations(soaked, client, dockerd)
                if only is None or name in only
            ]
        finally:
            soaked.clients.stop()
    return Soak(windows, healthy)


def can_restart_dockerd() -> bool:
    """Restarting dockerd needs root and a dockerd process on this machine (not one behind a VM or a socket)."""
    return os.geteuid() == 0 and subprocess.run(["pidof", "dockerd"], capture_output=True).returncode == 0
