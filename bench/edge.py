"""What the edge and the gateway cost, measured side by side in one run.

Starts the live tests' local stack (real Caddy and LiteLLM from the dev stack rendered with
--listen, a fake llama.cpp in its own process with a configurable delay) and measures, in rounds
that interleave the targets so machine noise hits all of them alike:
  - latency p50/p99 and throughput at concurrency 1 and 16, for GET /v1/models and a non-streaming
    chat completion: backend direct, LiteLLM direct, through the edge;
  - time to the first streamed chunk and total stream time, LiteLLM direct vs through the edge;
  - with a backend that answers in --slow-delay-ms, the whole gateway path vs the backend alone;
  - render time and program evaluation time under mocks as the stack grows.
Prints a table and writes every figure as JSON (--json). Not part of the test suite.

    .venv/bin/python -m bench.edge [--rounds 5] [--json bench-results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.cli import load_plan  # noqa: E402
from components.topology import GATEWAY_ENV  # noqa: E402
from tests.processes import Process, free_port, render, start_caddy, start_litellm  # noqa: E402

CHAT = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


class Target:
    def __init__(self, name: str, base: str, headers: dict[str, str]) -> None:
        self.name, self.base, self.headers = name, base, headers


async def _batch(client: httpx.AsyncClient, target: Target, kind: str, requests: int, concurrency: int):
    """`requests` requests with `concurrency` in flight; latencies (s) and wall time (s)."""
    latencies: list[float] = []
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            queue.pop()
            started = time.perf_counter()
            if kind == "models":
                response = await client.get(f"{target.base}/v1/models", headers=target.headers)
            else:
                response = await client.post(f"{target.base}/v1/chat/completions", json=CHAT, headers=target.headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{target.name} {kind}: {response.status_code} {response.text[:200]}")

    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - wall


async def _stream_once(client: httpx.AsyncClient, target: Target) -> tuple[float, float]:
    body = {**CHAT, "stream": True}
    started = time.perf_counter()
    first = None
    async with client.stream("POST", f"{target.base}/v1/chat/completions", json=body, headers=target.headers) as r:
        async for line in r.aiter_lines():
            if first is None and line.startswith("data: ") and '"content"' in line:
                first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started


async def measure_http(targets: list[Target], rounds: int, per_batch: dict[int, int], kinds: list[str]) -> dict:
    samples: dict = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for target in targets:  # warm every path: connections, LiteLLM's first-request setup
            for kind in kinds:
                await _batch(client, target, kind, 20, 4)
        for _ in range(rounds):
            order = [(t, k, c) for t in targets for k in kinds for c in per_batch]
            random.shuffle(order)  # interleaved: noise hits every target alike
            for target, kind, concurrency in order:
                if kind == "models" and target.name == "backend":
                    continue  # the fake's /v1/models is not the gateway's: nothing to compare
                latencies, wall = await _batch(client, target, kind, per_batch[concurrency], concurrency)
                entry = samples.setdefault(
                    f"{kind}/c{concurrency}/{target.name}", {"latencies": [], "wall": 0.0, "n": 0}
                )
                entry["latencies"] += latencies
                entry["wall"] += wall
                entry["n"] += len(latencies)
    return {
        key: {
            "p50_ms": percentile(v["latencies"], 50) * 1000,
            "p99_ms": percentile(v["latencies"], 99) * 1000,
            "rps": v["n"] / v["wall"],
            "requests": v["n"],
        }
        for key, v in samples.items()
    }


async def measure_streams(targets: list[Target], rounds: int) -> dict:
    firsts: dict[str, list[float]] = {t.name: [] for t in targets}
    totals: dict[str, list[float]] = {t.name: [] for t in targets}
    async with httpx.AsyncClient(timeout=60) as client:
        for target in targets:
            await _stream_once(client, target)
        for _ in range(rounds):
            for target in random.sample(targets, len(targets)):
                first, total = await _stream_once(client, target)
                firsts[target.name].append(first)
                totals[target.name].append(total)
    return {
        name: {
            "first_chunk_p50_ms": statistics.median(firsts[name]) * 1000,
            "total_p50_ms": statistics.median(totals[name]) * 1000,
        }
        for name in firsts
    }


def measure_growth() -> dict:
    """Render and mock-evaluation time for the dev stack and generated stacks of growing size."""
    from bench.generated_stack import generated_values, render_stack
    from tests.conftest import stack_values
    from tests.program_run import run_program

    sizes = {"dev": stack_values("dev")}
    for routes, models in ((25, 50), (50, 100), (100, 200)):
        sizes[f"{routes}r/{models}m"] = generated_values(routes, models)
    result = {}
    for name, values in sizes.items():
        render_s = min(_timed(lambda v=values: render_stack(v)) for _ in range(5))
        evaluate_s = min(_timed(lambda v=values: run_program(v)) for _ in range(3))
        result[name] = {"render_s": render_s, "evaluate_s": evaluate_s}
    return result


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class LocalStack:
    """The live tests' stack, with the backend in its own process."""

    def __init__(self, work: Path, delay_ms: float, stream_pause_ms: float, name: str) -> None:
        self.work, self.key = work, "sk-" + secrets.token_urlsafe(24)
        self.processes: list[Process] = []
        backend_port, self.edge_port, litellm_port = free_port(), free_port(), free_port()
        ports = {
            "llamacpp": backend_port,
            "llamacpp-embed": backend_port,
            "model-gateway": litellm_port,
            "oauth2-proxy": free_port(),
            "dashboard": free_port(),
            "open-webui": free_port(),
        }
        logs = work / f"logs-{name}"
        logs.mkdir()
        try:
            backend = Process(
                f"backend-{name}",
                [
                    sys.executable,
                    "-m",
                    "tests.fakes",
                    "--port",
                    str(backend_port),
                    "--delay-ms",
                    str(delay_ms),
                    "--stream-pause-ms",
                    str(stream_pause_ms),
                ],
                logs,
                cwd=ROOT,
            )
            self.processes.append(backend)
            backend.wait_http(f"http://127.0.0.1:{backend_port}/v1/models", 20)
            out = render("dev", work / f"rendered-{name}", ROOT, ports, self.edge_port)
            # As many workers as the dev stack deploys: the figures are for what ships.
            workers = load_plan("dev").topology.gateway.workers
            self.processes.append(
                start_litellm(out / "litellm.yaml", litellm_port, logs, self.key, GATEWAY_ENV, workers)
            )
            self.processes.append(start_caddy(out / "Caddyfile", self.edge_port, logs, self.key, name=f"caddy-{name}"))
        except Exception:
            self.stop()
            raise
        auth = {"Authorization": f"Bearer {self.key}"}
        self.backend = Target("backend", f"http://127.0.0.1:{backend_port}", {})
        self.litellm = Target("litellm", f"http://127.0.0.1:{litellm_port}", auth)
        self.edge = Target("edge", f"http://127.0.0.1:{self.edge_port}/llm", auth)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def _table(results: dict) -> str:
    lines = [
        "",
        "request latency and throughput (interleaved rounds)",
        f"{'series':<34}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}",
    ]
    for key, v in sorted(results["http"].items()):
        lines.append(f"{key:<34}{v['p50_ms']:>10.2f}{v['p99_ms']:>10.2f}{v['rps']:>10.1f}")
    lines += ["", "streaming (p50)", f"{'path':<34}{'first chunk ms':>16}{'total ms':>10}"]
    for key, v in results["stream"].items():
        lines.append(f"{key:<34}{v['first_chunk_p50_ms']:>16.2f}{v['total_p50_ms']:>10.2f}")
    lines += [
        "",
        f"slow backend ({results['slow_backend_ms']} ms per completion)",
        f"{'series':<34}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}",
    ]
    for key, v in sorted(results["slow"].items()):
        lines.append(f"{key:<34}{v['p50_ms']:>10.2f}{v['p99_ms']:>10.2f}{v['rps']:>10.1f}")
    lines += ["", "ratios (target in brackets)"]
    for key, (value, target) in results["ratios"].items():
        lines.append(f"  {key:<58}{value:>8.3f}   [{target}]")
    lines += ["", "cost as the stack grows", f"{'stack':<16}{'render s':>12}{'evaluate s':>12}"]
    for key, v in results["growth"].items():
        lines.append(f"{key:<16}{v['render_s']:>12.4f}{v['evaluate_s']:>12.4f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="requests per batch at concurrency 1")
    parser.add_argument("--slow-delay-ms", type=float, default=50.0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results.json")
    args = parser.parse_args()

    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "cpu": _cpu_model(),
        },
        "slow_backend_ms": args.slow_delay_ms,
    }
    per_batch = {1: args.requests, 16: args.requests * 4}
    with tempfile.TemporaryDirectory() as tmp:
        fast = LocalStack(Path(tmp), 0.0, 20.0, "fast")
        try:
            targets = [fast.backend, fast.litellm, fast.edge]
            results["http"] = asyncio.run(measure_http(targets, args.rounds, per_batch, ["models", "chat"]))
            results["stream"] = asyncio.run(measure_streams([fast.litellm, fast.edge], args.rounds * 4))
        finally:
            fast.stop()
        slow = LocalStack(Path(tmp), args.slow_delay_ms, 20.0, "slow")
        try:
            results["slow"] = asyncio.run(
                measure_http([slow.backend, slow.edge], args.rounds, {1: args.requests}, ["chat"])
            )
        finally:
            slow.stop()
    asyncio.set_event_loop(asyncio.new_event_loop())  # asyncio.run left none; the Pulumi SDK needs one
    results["growth"] = measure_growth()

    http, stream, slow_http, growth = results["http"], results["stream"], results["slow"], results["growth"]
    results["ratios"] = {
        "edge/litellm p50, chat c1": (http["chat/c1/edge"]["p50_ms"] / http["chat/c1/litellm"]["p50_ms"], "<= 1.10"),
        "edge/litellm p50, models c1": (
            http["models/c1/edge"]["p50_ms"] / http["models/c1/litellm"]["p50_ms"],
            "<= 1.10",
        ),
        "edge/litellm throughput, chat c16": (http["chat/c16/edge"]["rps"] / http["chat/c16/litellm"]["rps"], ">= 0.9"),
        "edge/litellm throughput, models c16": (
            http["models/c16/edge"]["rps"] / http["models/c16/litellm"]["rps"],
            ">= 0.9",
        ),
        "gateway/backend p50, chat c1 (fast backend)": (
            http["chat/c1/edge"]["p50_ms"] / http["chat/c1/backend"]["p50_ms"],
            "info",
        ),
        "gateway/backend p50, chat c1 (slow backend)": (
            slow_http["chat/c1/edge"]["p50_ms"] / slow_http["chat/c1/backend"]["p50_ms"],
            "<= 1.10",
        ),
        "first chunk, edge minus direct (ms)": (
            stream["edge"]["first_chunk_p50_ms"] - stream["litellm"]["first_chunk_p50_ms"],
            "<= 5",
        ),
        "render 100 routes/200 models (s)": (growth["100r/200m"]["render_s"], "< 0.2"),
        # Linear growth: doubling the added routes and models doubles the added evaluation time.
        "evaluate growth, (100r-50r)/(50r-25r)": (
            (growth["100r/200m"]["evaluate_s"] - growth["50r/100m"]["evaluate_s"])
            / (growth["50r/100m"]["evaluate_s"] - growth["25r/50m"]["evaluate_s"]),
            "~2 (linear)",
        ),
    }
    args.json.write_text(json.dumps(results, indent=2))
    print(f"machine: {results['machine']}")
    print(_table(results))
    print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
