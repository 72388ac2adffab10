"""What per-client limits and metrics cost, side by side in one run: the dev stack with one named client
twice on loopback, once with no limits and LiteLLM's metrics off, once with limits on every counter (set
high enough never to refuse, so every request is counted and checked) and metrics on. Requests go through
each edge with the client's key, interleaved round by round so machine noise hits both alike."""

from __future__ import annotations

from pathlib import Path

from bench import load
from bench.local import Target
from harness.keys import new_key
from harness.loopback import LoopbackStack
from harness.processes import THIS_BUILD, LiteLLMBuild, start_fake_backend
from harness.stacks import new_project, stack_values

CLIENT = "bench"
# Counted and checked on every request, never reached in a benchmark.
NEVER_REACHED = {"requestsPerMinute": 1_000_000, "tokensPerMinute": 1_000_000_000, "concurrent": 1_000}
OFF, ON = "limits+metrics off", "limits+metrics on"


def variant_values(on: bool) -> dict:
    values = stack_values("dev")
    values["clients"] = {CLIENT: {"limits": dict(NEVER_REACHED)} if on else {}}
    values["gateway"] = {**values["gateway"], "metrics": on}
    return values


def _start(work: Path, name: str, on: bool, build: LiteLLMBuild) -> tuple[LoopbackStack, Target]:
    key = new_key()
    project = new_project(work / name / "project", "bench", variant_values(on))
    stack = LoopbackStack("bench", work / name, project, client_keys={CLIENT: key})
    ports = stack.ports
    ports["llamacpp-embed"] = ports["llamacpp"]
    try:
        stack.add(start_fake_backend(ports["llamacpp"], f"backend-{name}", stack.logs))
        edge = stack.start(build)
    except Exception:
        stack.stop()
        raise
    return stack, Target(name, f"{edge}/llm", {"Authorization": f"Bearer {key}"})


def measure(work: Path, rounds: int, requests: int, build: LiteLLMBuild = THIS_BUILD) -> dict:
    stacks: list[LoopbackStack] = []
    try:
        targets = []
        for name, on in ((OFF, False), (ON, True)):
            stack, target = _start(work, "limits-on" if on else "limits-off", on, build)
            stacks.append(stack)
            targets.append(Target(name, target.base, target.headers))
        chat = load.latency(targets, "chat", rounds, requests)
        busy = load.throughput(targets, "chat", rounds, requests * 2)
    finally:
        for stack in stacks:
            stack.stop()
    overhead = {f"{p}_ms": chat[ON][f"{p}_ms"] - chat[OFF][f"{p}_ms"] for p in ("p50", "p90", "p99")}
    return {"chat_c1": chat, "chat_c16": busy, "overhead": overhead}
