"""The gateway's processes on loopback, for measuring: a fake llama.cpp in its own process, LiteLLM
started as the stack starts it (components/gateway_process.py), and the edge (the real Caddy with the
rendered Caddyfile). Also the CPU time and memory of a process and its children, from /proc."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.gateway_process import Server, gateway_process
from components.topology import GATEWAY_ENV
from policy.gateway_contract import EDGE_KEY_ENV
from tests.processes import EDGE_KEY, Process, free_port, render, start_caddy

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    headers: dict[str, str]


@dataclass(frozen=True)
class LiteLLMBuild:
    """Where LiteLLM comes from: this environment (the pinned release), or another virtualenv's bin
    directory (`--compare-venv`), to measure another release side by side."""

    bin_dir: Path

    @property
    def python(self) -> str:
        return str(self.bin_dir / "python")

    @property
    def litellm(self) -> str:
        return str(self.bin_dir / "litellm")

    @property
    def version(self) -> str:
        import subprocess

        code = "from importlib.metadata import version; print(version('litellm'))"
        return subprocess.run([self.python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()


THIS_BUILD = LiteLLMBuild(Path(sys.executable).parent)


def process_tree(pid: int) -> list[int]:
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found += process_tree(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its live children."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> dict[str, float]:
    """RSS (each process's resident pages, shared ones counted in each) and PSS (shared pages split
    between the processes that share them: what the tree really costs) of a process and its children."""
    rss = pss = 0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return {"rss_mib": rss / 1024, "pss_mib": pss / 1024, "processes": len(process_tree(pid))}


def start_backend(logs: Path, name: str, delay_ms: float, stream_pause_ms: float = 20.0) -> tuple[Process, int]:
    """The fake llama.cpp (TCP_NODELAY on every connection) in its own process, off the client's GIL."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.fakes", "--port", str(port), "--name", name]
    argv += ["--delay-ms", str(delay_ms), "--stream-pause-ms", str(stream_pause_ms)]
    backend = Process(name, argv, logs, cwd=ROOT)
    backend.wait_http(f"http://127.0.0.1:{port}/v1/models", 20)
    return backend, port


def start_gateway(
    config: Path,
    logs: Path,
    key: str,
    server: Server,
    workers: int,
    build: LiteLLMBuild = THIS_BUILD,
    port: int | None = None,
    name: str = "",
) -> tuple[Process, int]:
    """LiteLLM with the rendered config, as the container starts it; waits until it answers."""
    port = port or free_port()
    process = gateway_process(server, workers, str(config), "127.0.0.1", port)
    env = {**GATEWAY_ENV, **process.env, "LITELLM_MASTER_KEY": key, EDGE_KEY_ENV: EDGE_KEY, "HOME": str(logs)}
    gateway = Process(
        name or f"litellm-{server}-{workers}", process.local_argv(build.python, build.litellm), logs, env=env
    )
    try:
        gateway.wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180, ok=lambda r: r.status_code == 200)
    except Exception:
        gateway.stop()
        raise
    return gateway, port


# Where the benchmark's LiteLLM also offers chat completions as a pass-through endpoint.
PASS_THROUGH = "/bench-pass-through"


def _add_pass_through(config: Path, backend_port: int) -> None:
    """A what-if, measured beside the stack's own path and never rendered by the stack: LiteLLM's
    pass-through endpoint (key checked, custom auth run) forwarding chat completions to the one backend
    as they are. It skips LiteLLM's router, so the model name is not mapped, a model cannot have several
    backends or fail over, a client's model list is not enforced and Anthropic-style calls are not
    translated; what is left is LiteLLM's auth and HTTP layers."""
    document = yaml.safe_load(config.read_text())
    document["general_settings"]["pass_through_endpoints"].append(
        {
            "path": f"{PASS_THROUGH}/v1/chat/completions",
            "target": f"http://127.0.0.1:{backend_port}/v1/chat/completions",
            "auth": True,
        }
    )
    config.write_text(yaml.safe_dump(document, sort_keys=False))


class LocalStack:
    """Backend, LiteLLM and edge for the dev stack, rendered with the render CLI (the same plan)."""

    def __init__(
        self,
        work: Path,
        name: str,
        delay_ms: float,
        server: Server,
        workers: int,
        build: LiteLLMBuild = THIS_BUILD,
    ) -> None:
        self.key = "sk-" + secrets.token_urlsafe(24)
        self.logs = work / f"logs-{name}"
        self.logs.mkdir(parents=True)
        self.processes: list[Process] = []
        try:
            backend, backend_port = start_backend(self.logs, f"backend-{name}", delay_ms)
            self.processes.append(backend)
            edge_port, litellm_port = free_port(), free_port()
            ports = {
                "llamacpp": backend_port,
                "llamacpp-embed": backend_port,
                "model-gateway": litellm_port,
                "oauth2-proxy": free_port(),
                "dashboard": free_port(),
                "open-webui": free_port(),
            }
            out = render("dev", work / f"rendered-{name}", ROOT, ports, edge_port)
            self.config = out / "litellm.yaml"
            _add_pass_through(self.config, backend_port)
            self.gateway, _ = start_gateway(self.config, self.logs, self.key, server, workers, build, litellm_port)
            self.processes.append(self.gateway)
            self.processes.append(start_caddy(out / "Caddyfile", edge_port, self.logs, self.key, name=f"caddy-{name}"))
            # The same edge sending /llm straight to the backend: Caddy's own cost with nothing behind it
            # competing for CPU, and what an edge fast path past LiteLLM would cost.
            direct_port = free_port()
            direct = render(
                "dev", work / f"rendered-{name}-direct", ROOT, {**ports, "model-gateway": backend_port}, direct_port
            )
            self.processes.append(
                start_caddy(direct / "Caddyfile", direct_port, self.logs, self.key, name=f"caddy-{name}-direct")
            )
        except Exception:
            self.stop()
            raise
        auth = {"Authorization": f"Bearer {self.key}"}
        self.backend = Target("backend", f"http://127.0.0.1:{backend_port}", {})
        self.litellm = Target("litellm", f"http://127.0.0.1:{litellm_port}", auth)
        self.edge = Target("edge", f"http://127.0.0.1:{edge_port}/llm", auth)
        self.edge_direct = Target("edge-direct", f"http://127.0.0.1:{direct_port}/llm", auth)
        # The same LiteLLM process, through its pass-through endpoint (a what-if, see _add_pass_through).
        self.pass_through = Target("litellm-pass-through", f"http://127.0.0.1:{litellm_port}{PASS_THROUGH}", auth)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
