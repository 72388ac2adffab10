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
import json
import os
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx

from components.client_config import client_output
from components.images import LITELLM_IMAGE, parse_image
from harness.engine import DEV_CERT_DIR, DEV_HOST, new_run_id
from harness.engine.provider import CONTAINER, Engine
from harness.keys import new_key
from harness.processes import free_port
from harness.program_run import MOCK_AUTH_KEY, ProgramRun, run_program
from harness.resend import send_resending_once
from harness.stacks import REMOTE_PORT, ROOT, clients_stack_values
from harness.testnet import build
from harness.testnet.tailnet import (
    UPLINK,
    Tailnet,
    can_make_namespaces,
    join_host_bind,
    policy_for,
    remove_stale_machines,
)

BACKENDS = ("llamacpp", "llamacpp-b", "llamacpp-embed")
# One word a second: a stream of STREAM_WORDS lasts that many seconds.
STREAM_WORDS = 30
WORD_PAUSE_MS = 1000
CLIENTS = 8
# The machine a backend is added on (a real tailscaled in a namespace), streaming as the local fakes do.
REMOTE_MACHINE, REMOTE_ADDRESS = "gpu-2", "100.64.0.2"
DOMAIN = "tail0a1b2c.ts.net"
STREAM_PAUSE_ARGS = ("--stream-pause-ms", str(WORD_PAUSE_MS))
THINK_S = 0.25


@dataclass
class Window:
    """What happened while one operation ran."""

    operation: str
    # The steady clients, each keeping its connection as SDKs and browsers do.
    requests: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    # Requests sent again, once, because the server closed the kept-alive connection before answering
    # anything, as SDKs, browsers and Go's client do; failed only if that failed too.
    retried: int = 0
    # One more client that opens a new connection for every request.
    fresh_requests: int = 0
    fresh_failed: int = 0
    streams: int = 0
    # Streams that did not finish: seen by the client as an error, or (the bad case) ending as if complete.
    cut_with_error: int = 0
    cut_cleanly: int = 0
    worst_latency_s: float = 0.0
    operation_s: float = 0.0
    # For a dockerd restart: seconds from the restart until the API answered again.
    api_back_s: float | None = None

    @property
    def cut(self) -> int:
        return self.cut_with_error + self.cut_cleanly

    def row(self) -> str:
        back = f", API back after {self.api_back_s:.1f} s" if self.api_back_s is not None else ""
        return (
            f"{self.operation:<33} {self.failed:>3}/{self.requests:<5} failed ({self.retried} retried) "
            f"(new connections {self.fresh_failed}/{self.fresh_requests})  {self.cut}/{self.streams} cut "
            f"({self.cut_cleanly} cleanly)  worst {self.worst_latency_s:5.2f} s  took {self.operation_s:5.1f} s{back}"
        )


class Clients:
    """Steady clients and long streams to the API at `url` (for the name `server_name`), as an API client sends
    them; through a SOCKS5 `proxy` (a tailnet device's) when given."""

    def __init__(self, url: str, ca_file: str, key: str, server_name: str = DEV_HOST, proxy: str | None = None) -> None:
        self.url, self.server_name, self.proxy = url, server_name, proxy
        self.verify = ssl.create_default_context(cafile=ca_file)
        self.headers = {"Host": server_name, "Authorization": f"Bearer {key}"}
        # start, end, failure (None: ok), whether it was sent again on a new connection
        self.records: list[tuple[float, float, str | None, bool]] = []
        self.fresh_records: list[tuple[float, float, str | None, bool]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self) -> httpx.Client:
        return httpx.Client(verify=self.verify, timeout=120, headers=self.headers, proxy=self.proxy)

    def _post(self, client: httpx.Client, body: dict) -> httpx.Response:
        return client.post(f"{self.url}/chat/completions", json=body, extensions={"sni_hostname": self.server_name})

    def _one(self, client: httpx.Client, records: list, retry: bool) -> None:
        body = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}]}
        started, retried = time.monotonic(), False
        try:
            if retry:
                response, retried = send_resending_once(lambda: self._post(client, body))
            else:
                response = self._post(client, body)
            failure = None if response.status_code == 200 else f"{response.status_code} {response.text[:120]}"
        except httpx.HTTPError as error:
            failure = f"{type(error).__name__}: {error}"
        records.append((started, time.monotonic(), failure, retried))
        time.sleep(THINK_S)

    def _steady(self) -> None:
        with self._client() as client:
            while not self._stop.is_set():
                self._one(client, self.records, retry=True)

    def _fresh(self) -> None:
        while not self._stop.is_set():
            with self._client() as client:
                self._one(client, self.fresh_records, retry=False)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._steady, daemon=True) for _ in range(CLIENTS)]
        self._threads.append(threading.Thread(target=self._fresh, daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=150)

    def stream(self, results: list[str]) -> threading.Thread:
        """A long stream in a thread; appends "complete", "error: ..." or "clean-but-short: ..." to results."""

        def run() -> None:
            body = {
                "model": "local-chat",
                "messages": [{"role": "user", "content": f"stream {STREAM_WORDS} words"}],
                "stream": True,
            }
            words, finished = 0, False
            try:
                with self._client() as client:
                    request = client.build_request(
                        "POST", f"{self.url}/chat/completions", json=body, extensions={"sni_hostname": self.server_name}
                    )
                    response = client.send(request, stream=True)
                    try:
                        if response.status_code != 200:
                            results.append(f"error: {response.status_code}")
                            return
                        for line in response.iter_lines():
                            if not line.startswith("data: "):
                                continue
                            if line == "data: [DONE]":
                                finished = True
                                continue
                            chunk = json.loads(line[6:])
                            if "error" in chunk:
                                results.append(f"error: {chunk['error']}")
                                return
                            words += bool(chunk["choices"] and chunk["choices"][0]["delta"].get("content"))
                    finally:
                        response.close()
            except (httpx.HTTPError, ValueError) as error:
                results.append(f"error: {type(error).__name__}: {error}")
                return
            complete = finished and words == STREAM_WORDS
            results.append("complete" if complete else f"clean-but-short: {words} words, [DONE] {finished}")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def fake_backend(
    client: docker.DockerClient, engine: Engine, name: str, network: str = "backend", echo: bool = False
) -> str:
    """A fake llama.cpp (harness/fakes.py) in a container on the stack's `network`, as `name`; with `echo`,
    an app that echoes and records what it receives instead."""
    container = client.api.create_container(
        parse_image(LITELLM_IMAGE).tagged,
        entrypoint=["python3", "/fakes/fakes.py"],
        command=[
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--name",
            name,
            "--stream-pause-ms",
            str(WORD_PAUSE_MS),
            *(["--echo"] if echo else []),
        ],
        name=engine.sub.name(name),
        user="61020:61020",
        labels=engine.sub.label,
        host_config=client.api.create_host_config(
            binds=[f"{ROOT / 'harness' / 'fakes.py'}:/fakes/fakes.py:ro"],
            network_mode=engine.sub.name(network),
            restart_policy={"Name": "unless-stopped"},
        ),
        networking_config=client.api.create_networking_config(
            {engine.sub.name(network): client.api.create_endpoint_config(aliases=[name])}
        ),
    )
    client.api.start(container["Id"])
    return container["Id"]


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


def window(clients: Clients, name: str, operation: Callable[[], float | None], streams: int = 2) -> Window:
    """Run one operation with `streams` long streams in flight and the steady `clients` going."""
    results: list[str] = []
    started = time.monotonic()
    threads = [clients.stream(results) for _ in range(streams)]
    time.sleep(2)  # the streams are under way before the operation starts
    began = time.monotonic()
    api_back = operation()
    took = time.monotonic() - began
    for thread in threads:
        thread.join(timeout=STREAM_WORDS * 3 + 60)
    ended = time.monotonic()
    seen = [r for r in clients.records if started <= r[0] < ended]
    failures = [r[2] for r in seen if r[2] is not None]
    fresh = [r for r in clients.fresh_records if started <= r[0] < ended]
    return Window(
        operation=name,
        requests=len(seen),
        failed=len(failures),
        failures=failures[:5],
        retried=sum(r[3] for r in seen),
        fresh_requests=len(fresh),
        fresh_failed=sum(r[2] is not None for r in fresh),
        streams=streams,
        cut_with_error=sum(r.startswith("error") for r in results) + (streams - len(results)),
        cut_cleanly=sum(r.startswith("clean-but-short") for r in results),
        worst_latency_s=max((r[1] - r[0] for r in seen), default=0.0),
        operation_s=took,
        api_back_s=api_back,
    )


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


def table(windows: list[Window], title: str) -> str:
    return "\n".join([title, *(w.row() for w in windows)])
