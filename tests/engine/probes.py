"""Looking into running containers and at the published edge, for the engine tests."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import httpx

from harness.engine.provider import Engine
from harness.resend import send_resending_once
from tailnet_llm_gateway.images import CADDY_IMAGE, parse_image

# Log lines that mean a container tried something its hardening refuses: each is a finding.
REFUSALS = ("permission denied", "operation not permitted", "read-only file system")


def exec_in(client: docker.DockerClient, container_id: str, *argv: str, user: str = "") -> tuple[int, str]:
    """Run a command inside a running container as its own user; exit code and combined output."""
    handle = client.api.exec_create(container_id, list(argv), user=user)
    output = client.api.exec_start(handle["Id"]).decode(errors="replace")
    return client.api.exec_inspect(handle["Id"])["ExitCode"], output


def run_probe(
    client: docker.DockerClient,
    engine: Engine,
    *argv: str,
    volumes: list[str] | None = None,
    network: str | None = None,
    address: str | None = None,
) -> str:
    """Run a one-off busybox command in a labelled container on a test network (at `address`, if
    given); its output."""
    networking = None
    if network and address:
        endpoint = client.api.create_endpoint_config(ipv4_address=address)
        networking = client.api.create_networking_config({engine.sub.name(network): endpoint})
    container = client.api.create_container(
        parse_image(CADDY_IMAGE).tagged,
        entrypoint=list(argv),
        labels=engine.sub.label,
        user="61009:61009",
        host_config=client.api.create_host_config(
            binds=volumes, network_mode=engine.sub.name(network) if network else "none", read_only=True
        ),
        networking_config=networking,
    )
    try:
        client.api.start(container["Id"])
        client.api.wait(container["Id"], timeout=60)
        return client.api.logs(container["Id"]).decode(errors="replace")
    finally:
        client.api.remove_container(container["Id"], force=True)


def process_status(client: docker.DockerClient, container_id: str) -> dict[str, str]:
    """/proc/1/status of the container's main process, as a dict."""
    code, text = exec_in(client, container_id, "cat", "/proc/1/status")
    assert code == 0, f"cannot read /proc/1/status: {text}"
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def logs(client: docker.DockerClient, container_id: str) -> str:
    return client.api.logs(container_id).decode(errors="replace")


def log_lines(
    client: docker.DockerClient, container_id: str, *needles: str, count: int = 1, timeout_s: float = 10.0
) -> list[str]:
    """The log lines holding every needle, once `count` of them are there or `timeout_s` has passed: the
    engine writes a container's output to its log asynchronously, so a line can lag the response."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [line for line in logs(client, container_id).splitlines() if all(n in line for n in needles)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def refusals(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(word in line.lower() for word in REFUSALS)]


@dataclass
class Edge:
    """HTTPS to the published edge: connects to the loopback address, speaks TLS for the tailnet name."""

    host: str
    address: str
    port: int
    ca_file: str

    def get(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> httpx.Response:
        """GET on a new connection, or on `client`'s kept-alive one as SDKs and browsers send requests
        (once more on a new connection if the kept-alive one was closed before any answer)."""
        if client is None:
            with self.client(timeout) as fresh:
                return self.get(path, headers, timeout, fresh)
        response, _ = send_resending_once(
            lambda: client.get(
                f"https://{self.address}:{self.port}{path}",
                headers={"Host": self.host, **(headers or {})},
                extensions={"sni_hostname": self.host},
                timeout=timeout,
            )
        )
        return response

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=self.ca_file), timeout=timeout)


@dataclass
class OutageMeter:
    """Polls a URL every `every_s` in the background and measures the longest run of failed polls."""

    probe: Callable[[], bool]
    every_s: float = 0.05
    failures: list[tuple[float, float]] = field(default_factory=list)
    # What each failed poll raised or answered, to say why in an assertion.
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        down_since = None
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                ok = self.probe()
                if not ok:
                    self.reasons.append("the probe's check failed")
            except Exception as error:  # noqa: BLE001 - any failure of the probe is downtime
                ok = False
                self.reasons.append(f"{type(error).__name__}: {error}")
            if not ok and down_since is None:
                down_since = now
            elif ok and down_since is not None:
                self.failures.append((down_since, now))
                down_since = None
            time.sleep(self.every_s)
        if down_since is not None:
            self.failures.append((down_since, time.monotonic()))

    def __enter__(self) -> OutageMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def longest_s(self) -> float:
        return max((end - start for start, end in self.failures), default=0.0)
