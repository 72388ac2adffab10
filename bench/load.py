"""Requests against targets, interleaved so machine noise hits every target alike: latency percentiles at
one request at a time, throughput at sixteen, the first streamed chunk, and LiteLLM's CPU per request."""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from bench.local import Target, cpu_seconds

CHAT = {"model": "local-chat", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def summary(latencies: list[float]) -> dict[str, float]:
    return {f"p{p}_ms": percentile(latencies, p) * 1000 for p in (50, 90, 99)}


async def _request(client: httpx.AsyncClient, target: Target, kind: str) -> float:
    started = time.perf_counter()
    if kind == "models":
        response = await client.get(f"{target.base}/v1/models", headers=target.headers)
    else:
        response = await client.post(f"{target.base}/v1/chat/completions", json=CHAT, headers=target.headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{target.name} {kind}: {response.status_code} {response.text[:200]}")
    return elapsed


async def _batch(client: httpx.AsyncClient, target: Target, kind: str, requests: int, concurrency: int):
    latencies: list[float] = []
    remaining = [requests]

    async def worker() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            latencies.append(await _request(client, target, kind))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def _interleaved(targets: list[Target], kind: str, rounds: int, requests: int, concurrency: int) -> dict:
    found = {t.name: {"latencies": [], "wall": 0.0} for t in targets}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for target in targets:  # warm every path: connections, LiteLLM's first-request setup
            await _batch(client, target, kind, 20, min(concurrency, 4))
        for _ in range(rounds):
            for target in random.sample(targets, len(targets)):
                latencies, wall = await _batch(client, target, kind, requests, concurrency)
                found[target.name]["latencies"] += latencies
                found[target.name]["wall"] += wall
    return {
        name: {**summary(v["latencies"]), "rps": len(v["latencies"]) / v["wall"], "requests": len(v["latencies"])}
        for name, v in found.items()
    }


def latency(targets: list[Target], kind: str, rounds: int, requests: int) -> dict:
    """p50/p90/p99 at one request at a time, interleaved by round."""
    return asyncio.run(_interleaved(targets, kind, rounds, requests, 1))


def throughput(targets: list[Target], kind: str, rounds: int, requests: int, concurrency: int = 16) -> dict:
    return asyncio.run(_interleaved(targets, kind, rounds, requests, concurrency))


async def _first_chunks(targets: list[Target], rounds: int) -> dict:
    firsts: dict[str, list[float]] = {t.name: [] for t in targets}
    async with httpx.AsyncClient(timeout=60) as client:
        for index in range(rounds + 1):
            for target in random.sample(targets, len(targets)):
                started, first = time.perf_counter(), None
                body = {**CHAT, "stream": True}
                async with client.stream(
                    "POST", f"{target.base}/v1/chat/completions", json=body, headers=target.headers
                ) as response:
                    async for line in response.aiter_lines():
                        if first is None and line.startswith("data: ") and '"content"' in line:
                            first = time.perf_counter() - started
                if index and first is not None:  # the first round only warms up
                    firsts[target.name].append(first)
    return {name: summary(values) for name, values in firsts.items()}


def first_chunk(targets: list[Target], rounds: int) -> dict:
    return asyncio.run(_first_chunks(targets, rounds))


def cpu_per_request(target: Target, pid: int, requests: int) -> float:
    """LiteLLM's own CPU time (its process tree) per chat completion, in ms, at one request at a time."""
    with httpx.Client(timeout=60) as client:
        for _ in range(10):
            client.post(f"{target.base}/v1/chat/completions", json=CHAT, headers=target.headers)
        before = cpu_seconds(pid)
        for _ in range(requests):
            client.post(f"{target.base}/v1/chat/completions", json=CHAT, headers=target.headers)
        return (cpu_seconds(pid) - before) / requests * 1000
