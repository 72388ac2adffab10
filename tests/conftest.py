"""Shared fixtures: the dev stack's settings, and (once per session) the live local edges."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from harness import fakes
from harness.keys import new_key
from harness.loopback import LoopbackStack
from harness.ports import free_port
from harness.processes import Process, start_fake_backend
from harness.stacks import (
    CLIENTS_STACK,
    EXPOSURE_STACKS,
    NODE_ADDRESS,
    clients_stack_values,
    is_tailnet_node,
    new_project,
    stack_values,
)
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import Topology, build_topology


def cannot_run(reason: str) -> NoReturn:
    """A test whose prerequisite (a Docker engine, Go for the test tailnet) is missing: one visible skip line on
    a developer's machine, a failure under CI (CI=true, as .ci/run sets it), where every test must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"every test must run under CI, but {reason}")
    pytest.skip(reason)


@pytest.fixture
def dev_values() -> dict:
    """A fresh, mutable copy of the dev stack's settings for a test to break."""
    return copy.deepcopy(stack_values("dev"))


@pytest.fixture
def dev_topology() -> Topology:
    return build_topology(Settings.from_mapping(stack_values("dev")))


@dataclass
class LocalEdge:
    """The dev stack on loopback: real Caddy and LiteLLM, fake backend, SSO and protected upstreams."""

    base_url: str
    litellm_url: str
    backend_url: str
    key: str
    out_dir: Path
    log_dir: Path
    upstream_ports: dict[str, int]
    keyless_base_url: str
    # The same edge, but with a header echo in place of LiteLLM, to see what the bypass forwards.
    api_echo_base_url: str
    api_echo_port: int
    stack: str = "dev"


@pytest.fixture(scope="session", params=["dev", "dev-node"])
def local_edge(request, tmp_path_factory) -> Iterator[LocalEdge]:
    """The edge of each exposure mode's dev stack (host-bind and tailnet-node), rendered with --listen."""
    stack = LoopbackStack(request.param, tmp_path_factory.mktemp(f"edge-{request.param}"))
    ports = stack.ports
    ports["llamacpp-embed"] = ports["llamacpp"]  # one fake answers for both backends
    fake_servers = [
        fakes.FakeServer(fakes.OpenAIBackendHandler, ports["llamacpp"], "llamacpp").start(),
        fakes.FakeServer(fakes.FakeSsoHandler, ports["oauth2-proxy"], "oauth2-proxy").start(),
        fakes.FakeServer(fakes.HeaderEchoHandler, ports["dashboard"], "dashboard").start(),
        fakes.FakeServer(fakes.HeaderEchoHandler, ports["open-webui"], "open-webui").start(),
    ]
    api_echo = fakes.FakeServer(fakes.HeaderEchoHandler, free_port(), "api-echo").start()
    fake_servers.append(api_echo)
    try:
        base_url = stack.start()
        # The same edge with an empty key at run time: the bearer route must fail closed.
        keyless_base_url = stack.edge("caddy-keyless", master_key="")
        echo_base_url = stack.edge("caddy-echo", {stack.gateway.service.name: api_echo.port})
        yield LocalEdge(
            base_url=base_url,
            litellm_url=f"http://127.0.0.1:{stack.gateway_port}",
            backend_url=f"http://127.0.0.1:{ports['llamacpp']}",
            key=stack.master_key,
            out_dir=stack.config.parent,
            log_dir=stack.logs,
            upstream_ports=ports,
            keyless_base_url=keyless_base_url,
            api_echo_base_url=echo_base_url,
            api_echo_port=api_echo.port,
            stack=request.param,
        )
    finally:
        stack.stop()
        for server in fake_servers:
            server.stop()


@dataclass
class ClientsEdge:
    """Real Caddy and LiteLLM for the clients' stack; each backend a process of its own, to stop."""

    base: str
    base_url: str
    master_key: str
    # Each client's key, as the edge holds them (in its environment).
    client_keys: dict[str, str]
    project: Path
    work: Path
    # Where the running LiteLLM and edge read their rendered files.
    out_dir: Path
    log_dir: Path
    upstream_ports: dict[str, int]
    backends: dict[str, Process]
    # The same edge with recording echoes in place of LiteLLM and the MCP server: what reached them.
    echo_base_url: str
    echo: fakes.FakeServer
    mcp: fakes.FakeServer
    # The address the node's requests come from (tailnet-node stacks), as render --node-address says.
    node_address: str | None

    @property
    def litellm_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_ports['model-gateway']}"

    @property
    def key(self) -> str:
        """A client allowed everywhere."""
        return self.client_keys["laptop"]

    def values(self) -> dict:
        return clients_stack_values(self.base)

    def restart(self, name: str) -> None:
        self.backends[name].stop()
        self.backends[name] = start_fake_backend(self.upstream_ports[name], name, self.log_dir)


@contextlib.contextmanager
def _started_clients_edge(base: str, work: Path) -> Iterator[ClientsEdge]:
    values = clients_stack_values(base)
    project = new_project(work / "project", CLIENTS_STACK, values)
    node_address = NODE_ADDRESS if is_tailnet_node(values) else None
    client_keys = {name: new_key() for name in ("laptop", "ci")}
    stack = LoopbackStack(CLIENTS_STACK, work, project, client_keys=client_keys, node_address=node_address)
    ports = stack.ports
    echo = fakes.FakeServer(fakes.HeaderEchoHandler, free_port(), "api-echo").start()
    mcp = fakes.FakeServer(fakes.McpHandler, free_port(), "mcp-server").start()
    ports["mcp-server"] = mcp.port
    backends: dict[str, Process] = {}
    try:
        for name in ("llamacpp", "llamacpp-b", "llamacpp-embed"):
            backends[name] = start_fake_backend(ports[name], name, stack.logs)
        base_url = stack.start()
        echo_base_url = stack.edge("caddy-echo", {stack.gateway.service.name: echo.port})
        yield ClientsEdge(
            base=base,
            base_url=base_url,
            master_key=stack.master_key,
            client_keys=client_keys,
            project=project,
            work=work,
            out_dir=stack.config.parent,
            log_dir=stack.logs,
            upstream_ports=ports,
            backends=backends,
            echo_base_url=echo_base_url,
            echo=echo,
            mcp=mcp,
            node_address=node_address,
        )
    finally:
        stack.stop()
        for process in backends.values():
            process.stop()
        echo.stop()
        mcp.stop()


@pytest.fixture(scope="session")
def clients_edges(tmp_path_factory) -> Iterator[Callable[[str], ClientsEdge]]:
    """The clients' stack of each exposure mode, started once on first use and kept for the session."""
    started: dict[str, ClientsEdge] = {}
    with contextlib.ExitStack() as stack:

        def get(base: str) -> ClientsEdge:
            if base not in started:
                work = tmp_path_factory.mktemp(f"edge-clients-{base}")
                started[base] = stack.enter_context(_started_clients_edge(base, work))
            return started[base]

        yield get


@pytest.fixture(scope="session", params=EXPOSURE_STACKS)
def clients_edge(request, clients_edges) -> ClientsEdge:
    """The clients' stack in each exposure mode (tailnet-node, then host-bind)."""
    return clients_edges(request.param)


@pytest.fixture(scope="session")
def node_edge(clients_edges) -> ClientsEdge:
    """The clients' stack on a tailnet node: the only mode with tailnet routes."""
    return clients_edges("dev-node")
