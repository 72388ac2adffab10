"""Shared fixtures: the dev stack's settings, and (once per session) the live local edge."""

from __future__ import annotations

import contextlib
import copy
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.settings import PROJECT, Settings
from components.topology import GATEWAY_ENV, Topology, build_topology
from tests import fakes
from tests.processes import Process, free_port, render, start_caddy, start_fake_backend, start_litellm

ROOT = Path(__file__).resolve().parent.parent


def stack_values(stack: str = "dev", directory: Path = ROOT) -> dict:
    """The project's settings from Pulumi.<stack>.yaml (at the repository root), without namespaces."""
    document = yaml.safe_load((directory / f"Pulumi.{stack}.yaml").read_text()) or {}
    prefix = f"{PROJECT}:"
    return {k[len(prefix) :]: v for k, v in (document.get("config") or {}).items() if k.startswith(prefix)}


@pytest.fixture
def dev_values() -> dict:
    """A fresh, mutable copy of the dev stack's settings for a test to break."""
    return copy.deepcopy(stack_values("dev"))


@pytest.fixture
def dev_topology() -> Topology:
    return build_topology(Settings.from_mapping(stack_values("dev")))


def write_stack(project_dir: Path, stack: str, values: dict, extra: dict | None = None) -> Path:
    """Write a Pulumi.<stack>.yaml with namespaced keys (plus `extra` raw keys) into project_dir."""
    config = {f"{PROJECT}:{k}": v for k, v in values.items()}
    config.update(extra or {})
    path = project_dir / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


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


@pytest.fixture(scope="session", params=["dev", "dev-node"])
def local_edge(request, tmp_path_factory) -> LocalEdge:
    """The edge of each exposure mode's dev stack (host-bind and tailnet-node), rendered with --listen."""
    stack = request.param
    work = tmp_path_factory.mktemp(f"edge-{stack}")
    log_dir = work / "logs"
    log_dir.mkdir()
    key = "sk-" + secrets.token_urlsafe(24)
    ports = {
        "llamacpp": free_port(),
        "oauth2-proxy": free_port(),
        "dashboard": free_port(),
        "open-webui": free_port(),
        "model-gateway": free_port(),
    }
    ports["llamacpp-embed"] = ports["llamacpp"]  # one fake answers for both backends
    fake_servers = [
        fakes.FakeServer(fakes.OpenAIBackendHandler, ports["llamacpp"], "llamacpp").start(),
        fakes.FakeServer(fakes.FakeSsoHandler, ports["oauth2-proxy"], "oauth2-proxy").start(),
        fakes.FakeServer(fakes.HeaderEchoHandler, ports["dashboard"], "dashboard").start(),
        fakes.FakeServer(fakes.HeaderEchoHandler, ports["open-webui"], "open-webui").start(),
    ]
    api_echo_port = free_port()
    fake_servers.append(fakes.FakeServer(fakes.HeaderEchoHandler, api_echo_port, "api-echo").start())
    processes: list[Process] = []
    try:
        edge_port, keyless_port, echo_port = free_port(), free_port(), free_port()
        out = render(stack, work / "rendered", ROOT, ports, edge_port)
        keyless_out = render(stack, work / "rendered-keyless", ROOT, ports, keyless_port)
        echo_out = render(stack, work / "rendered-echo", ROOT, {**ports, "model-gateway": api_echo_port}, echo_port)
        # As the stack starts it: the server and worker count the settings give.
        gateway = build_topology(Settings.from_mapping(stack_values(stack))).gateway
        processes.append(
            start_litellm(
                out / "litellm.yaml", ports["model-gateway"], log_dir, key, GATEWAY_ENV, gateway.workers, gateway.server
            )
        )
        processes.append(start_caddy(out / "Caddyfile", edge_port, log_dir, key))
        # The same edge with an empty key at run time: the bearer route must fail closed.
        processes.append(start_caddy(keyless_out / "Caddyfile", keyless_port, log_dir, "", name="caddy-keyless"))
        processes.append(start_caddy(echo_out / "Caddyfile", echo_port, log_dir, key, name="caddy-echo"))
        yield LocalEdge(
            base_url=f"http://127.0.0.1:{edge_port}",
            litellm_url=f"http://127.0.0.1:{ports['model-gateway']}",
            backend_url=f"http://127.0.0.1:{ports['llamacpp']}",
            key=key,
            out_dir=out,
            log_dir=log_dir,
            upstream_ports=ports,
            keyless_base_url=f"http://127.0.0.1:{keyless_port}",
            api_echo_base_url=f"http://127.0.0.1:{echo_port}",
            api_echo_port=api_echo_port,
        )
    finally:
        for proc in reversed(processes):
            proc.stop()
        for server in fake_servers:
            server.stop()


# The clients' stack: a dev stack (tailnet-node by default, or host-bind), plus a second backend for
# local-chat, a browser origin for the API, two named clients (laptop: everything; ci: /llm/* and
# local-chat only), a second bearer route (/mcp/* to an MCP server, laptop only) and, on a tailnet node, a
# tailnet route (/tsllm/*, for callers the policy grants).
ALLOWED_ORIGIN = "https://chat.example.com"
# Requests "from the gateway's node" (as serve sends them) come from this loopback address.
NODE_ADDRESS = "127.0.0.2"
CLIENTS_STACK = "clients"
EXPOSURE_STACKS = ("dev-node", "dev")


def clients_stack_values(base: str = "dev-node") -> dict:
    values = stack_values(base)
    values["services"]["llamacpp-b"] = {"port": 8080, "networks": ["backend"]}
    values["services"]["mcp-server"] = {"port": 8000, "networks": ["proxy-net"]}
    values["models"]["local-chat"] = {
        "backends": [{"service": "llamacpp"}, {"service": "llamacpp-b"}],
        "model": "local-chat",
    }
    api = next(r for r in values["routes"] if r["auth"] == "bearer")
    api["corsOrigins"] = [ALLOWED_ORIGIN]
    values["routes"].append(
        {
            "path": "/mcp/*",
            "upstream": "mcp-server",
            "stripPrefix": True,
            "auth": "bearer",
            "allowPaths": ["/sse", "/messages/*"],
        }
    )
    if values.get("exposure", "tailnet-node") == "tailnet-node":
        values["routes"].append(
            {"path": "/tsllm/*", "upstream": "model-gateway", "stripPrefix": True, "auth": "tailnet"}
        )
    values["clients"] = {"laptop": {}, "ci": {"routes": ["/llm/*"], "models": ["local-chat"]}}
    return values


def new_project(directory: Path, stack: str, values: dict) -> Path:
    """A project directory with the repository's Pulumi.yaml and tailnet files and one stack file."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", directory)
    shutil.copytree(ROOT / "tailnet", directory / "tailnet", dirs_exist_ok=True)
    write_stack(directory, stack, values)
    return directory


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
    log_dir = work / "logs"
    log_dir.mkdir()
    values = clients_stack_values(base)
    project = new_project(work / "project", CLIENTS_STACK, values)
    node_address = NODE_ADDRESS if values.get("exposure", "tailnet-node") == "tailnet-node" else None
    master_key = "sk-" + secrets.token_urlsafe(24)
    client_keys = {name: "sk-" + secrets.token_urlsafe(24) for name in ("laptop", "ci")}
    names = ("llamacpp", "llamacpp-b", "llamacpp-embed")
    others = ("oauth2-proxy", "dashboard", "open-webui", "model-gateway")
    ports = {name: free_port() for name in (*names, *others)}
    echo = fakes.FakeServer(fakes.HeaderEchoHandler, free_port(), "api-echo").start()
    mcp = fakes.FakeServer(fakes.McpHandler, free_port(), "mcp-server").start()
    ports["mcp-server"] = mcp.port
    processes: list[Process] = []
    backends: dict[str, Process] = {}
    try:
        for name in names:
            backends[name] = start_fake_backend(ports[name], name, log_dir)
        edge_port, echo_port = free_port(), free_port()
        out = render(CLIENTS_STACK, work / "rendered", project, ports, edge_port, node_address)
        echo_ports = {**ports, "model-gateway": echo.port}
        echo_out = render(CLIENTS_STACK, work / "rendered-echo", project, echo_ports, echo_port, node_address)
        edge = ClientsEdge(
            base=base,
            base_url=f"http://127.0.0.1:{edge_port}",
            master_key=master_key,
            client_keys=client_keys,
            project=project,
            work=work,
            log_dir=log_dir,
            upstream_ports=ports,
            backends=backends,
            echo_base_url=f"http://127.0.0.1:{echo_port}",
            echo=echo,
            mcp=mcp,
            node_address=node_address,
        )
        gateway = build_topology(Settings.from_mapping(values)).gateway
        processes.append(
            start_litellm(
                out / "litellm.yaml",
                ports["model-gateway"],
                log_dir,
                master_key,
                GATEWAY_ENV,
                gateway.workers,
                gateway.server,
            )
        )
        processes.append(start_caddy(out / "Caddyfile", edge_port, log_dir, master_key, client_keys=client_keys))
        processes.append(
            start_caddy(
                echo_out / "Caddyfile", echo_port, log_dir, master_key, name="caddy-echo", client_keys=client_keys
            )
        )
        yield edge
    finally:
        for proc in [*reversed(processes), *backends.values()]:
            proc.stop()
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
