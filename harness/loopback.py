"""A stack on loopback: every service it declares moved to a free loopback port, its files rendered by the
render CLI (the contract: --upstream, --listen, --node-address), LiteLLM started on them as the container
starts it and Caddy in front. The live tests and the benchmark assemble their stacks here, nowhere else.

Whatever answers for the other services (stub backends, SSO, echoes) the caller starts on `ports`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from policy.gateway_contract import markers
from tailnet_llm_gateway.gateway_process import Server
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import build_topology

from .keys import new_key
from .ports import free_port, free_ports
from .processes import (
    THIS_BUILD,
    LiteLLMBuild,
    Process,
    render,
    start_caddy,
    start_fake_backend,
    start_litellm,
)
from .stacks import ROOT, stack_values


class LoopbackStack:
    """One stack's services on loopback ports; `start()` renders it and starts LiteLLM and the edge,
    `edge()` starts another Caddy on the same stack with some services moved; `stop()` ends them all."""

    def __init__(
        self,
        stack: str,
        work: Path,
        project: Path = ROOT,
        master_key: str | None = None,
        client_keys: dict[str, str] | None = None,
        node_address: str | None = None,
        egress_port: int | None = None,
    ) -> None:
        self.stack, self.work, self.project, self.node_address = stack, work, project, node_address
        self.master_key = master_key if master_key is not None else new_key()
        self.client_keys = client_keys or {}
        self.values = stack_values(stack, project)
        topology = build_topology(Settings.from_mapping(self.values))
        self.gateway = topology.gateway
        # The edge's forwarders to services on other machines and their dialers (consecutive ports from
        # this one), and the
        # node's SOCKS5 proxy they dial through (tailnet-node stacks; the caller runs it).
        self.forward_port = free_ports(2 * len(topology.forwards)) if topology.forwards else None
        self.egress_port = egress_port
        self._forwards = len(topology.forwards)
        # Each edge's first forwarder port, by edge name: another edge of the stack gets ports of its own.
        self.forward_ports: dict[str, int | None] = {}
        self.ports = {name: free_port() for name in sorted(self.values["services"])}
        # The edge's Prometheus metrics listener.
        self.metrics_port = free_port()
        # The gateway's other replicas, when `start` runs more than one.
        self.replica_ports: dict[str, int] = {}
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []

    @property
    def gateway_port(self) -> int:
        return self.ports[self.gateway.service.name]

    def render(self, name: str, moved: dict[str, int] | None = None) -> tuple[Path, int]:
        """The stack's files for an edge on a free port, with `moved` services at other ports."""
        port = free_port()
        ports = {**self.ports, **self.replica_ports, **(moved or {})}
        forward_port = self.forward_port
        if name != "edge" and self._forwards:
            forward_port = free_ports(2 * self._forwards)
        self.forward_ports[name] = forward_port
        out = render(
            self.stack,
            self.work / f"rendered-{name}",
            self.project,
            ports,
            port,
            self.node_address,
            self.metrics_port,
            forward_port,
            self.egress_port,
        )
        return out, port

    @property
    def gateway_ports(self) -> list[int]:
        """Each running LiteLLM replica's port, the first one's first."""
        return [self.gateway_port, *self.replica_ports.values()]

    def start(
        self,
        build: LiteLLMBuild = THIS_BUILD,
        server: Server | None = None,
        workers: int | None = None,
        config_edit: Callable[[Path, dict[str, int]], None] | None = None,
        replicas: int = 1,
    ) -> str:
        """Render, start LiteLLM (`replicas` of them, as the edge balances the stack's replicas) and the
        edge; the edge's URL. LiteLLM runs as the settings say unless `server` or `workers` say otherwise;
        `config_edit` may change its config first (a what-if)."""
        self.replica_ports = {name: free_port() for name in self.gateway.replica_names[1:replicas]}
        out, port = self.render("edge")
        self.config = out / "litellm.yaml"
        if config_edit is not None:
            config_edit(self.config, self.ports)
        started = []
        for index, gateway_port in enumerate(self.gateway_ports):
            started.append(
                self.add(
                    start_litellm(
                        self.config,
                        gateway_port,
                        self.logs,
                        self.master_key,
                        workers or self.gateway.workers,
                        server or self.gateway.server,
                        name="litellm" if index == 0 else f"litellm-{index + 1}",
                        build=build,
                        ready_within_s=180 if build is not THIS_BUILD else 90,
                    )
                )
            )
        self.litellm = started[0]
        self.add(start_caddy(out / markers.CADDYFILE, port, self.logs, self.master_key, client_keys=self.client_keys))
        return f"http://127.0.0.1:{port}"

    def edge(
        self,
        name: str,
        moved: dict[str, int] | None = None,
        master_key: str | None = None,
        edit: Callable[[str], str] | None = None,
    ) -> str:
        """Another edge for the same stack (its own render), with `moved` services elsewhere and, if given,
        another master key (an empty one: a key missing at run time) or its Caddyfile changed by `edit` (an
        edge broken on purpose)."""
        out, port = self.render(name, moved)
        if edit is not None:
            caddyfile = out / markers.CADDYFILE
            original = caddyfile.read_text()
            caddyfile.write_text(edit(original))
            if caddyfile.read_text() == original:
                raise RuntimeError(f"the edit of {name} does not apply to the Caddyfile any more")
        key = self.master_key if master_key is None else master_key
        self.add(start_caddy(out / markers.CADDYFILE, port, self.logs, key, name=name, client_keys=self.client_keys))
        return f"http://127.0.0.1:{port}"

    def add(self, process: Process) -> Process:
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@contextlib.contextmanager
def running_with_stub_backends(stack: LoopbackStack, backends: Iterable[str], replicas: int = 1) -> Iterator[str]:
    """The stub backend of each named service on its port, then the stack (`replicas` LiteLLMs and the edge);
    the edge's URL. Everything started here is stopped afterwards."""
    started: list[Process] = []
    try:
        for name in backends:
            started.append(start_fake_backend(stack.ports[name], name, stack.logs))
        yield stack.start(replicas=replicas)
    finally:
        stack.stop()
        for process in started:
            process.stop()
