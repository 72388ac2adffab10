"""The gateway's processes on loopback, for measuring: a stub llama.cpp in its own process, LiteLLM
started as the stack starts it, and the edge (the real Caddy with the rendered Caddyfile), assembled by
harness.loopback. Also the CPU time and memory of a process and its children, from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.loopback import LoopbackStack
from harness.processes import THIS_BUILD, LiteLLMBuild, start_fake_backend
from tailnet_llm_gateway.gateway_process import Server


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    headers: dict[str, str]


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


# The stub backend's pause between streamed words: a generation of about 50 words a second.
BENCH_WORD_PAUSE_MS = 20.0


# Where the benchmark's LiteLLM also offers chat completions as a pass-through endpoint.
PASS_THROUGH = "/bench-pass-through"


def _add_pass_through(config: Path, ports: dict[str, int]) -> None:
    """A what-if, measured beside the stack's own path and never rendered by the stack: LiteLLM's
    pass-through endpoint (key checked, custom auth run) forwarding chat completions to the one backend
    as they are. It skips LiteLLM's router, so the model name is not mapped, a model cannot have several
    backends or fail over, a client's model list is not enforced and Anthropic-style calls are not
    translated; what is left is LiteLLM's auth and HTTP layers."""
    document = yaml.safe_load(config.read_text())
    document["general_settings"]["pass_through_endpoints"].append(
        {
            "path": f"{PASS_THROUGH}/v1/chat/completions",
            "target": f"http://127.0.0.1:{ports['llamacpp']}/v1/chat/completions",
            "auth": True,
        }
    )
    config.write_text(yaml.safe_dump(document, sort_keys=False))


class LocalStack:
    """The dev stack on loopback (harness.loopback, the same render CLI and plan) with a stub backend that
    answers after `delay_ms`, LiteLLM run by `server` with `workers`, and two edges: the stack's, and one
    sending /llm straight to the backend."""

    def __init__(
        self,
        work: Path,
        name: str,
        delay_ms: float,
        server: Server,
        workers: int,
        build: LiteLLMBuild = THIS_BUILD,
    ) -> None:
        self.stack = LoopbackStack("dev", work / name)
        ports = self.stack.ports
        ports["llamacpp-embed"] = ports["llamacpp"]
        try:
            self.stack.add(
                start_fake_backend(ports["llamacpp"], f"backend-{name}", self.stack.logs, BENCH_WORD_PAUSE_MS, delay_ms)
            )
            edge = self.stack.start(build, server=server, workers=workers, config_edit=_add_pass_through)
            # The same edge sending /llm straight to the backend: Caddy's own cost with nothing behind it
            # competing for CPU, and what an edge fast path past LiteLLM would cost.
            direct = self.stack.edge(f"caddy-{name}-direct", {self.stack.gateway.service.name: ports["llamacpp"]})
        except Exception:
            self.stack.stop()
            raise
        self.gateway = self.stack.litellm
        self.config = self.stack.config
        auth = {"Authorization": f"Bearer {self.stack.master_key}"}
        litellm = f"http://127.0.0.1:{self.stack.gateway_port}"
        self.backend = Target("backend", f"http://127.0.0.1:{ports['llamacpp']}", {})
        self.litellm = Target("litellm", litellm, auth)
        self.edge = Target("edge", f"{edge}/llm", auth)
        self.edge_direct = Target("edge-direct", f"{direct}/llm", auth)
        # The same LiteLLM process, through its pass-through endpoint (a what-if, see _add_pass_through).
        self.pass_through = Target("litellm-pass-through", f"{litellm}{PASS_THROUGH}", auth)

    def stop(self) -> None:
        self.stack.stop()
