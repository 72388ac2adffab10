"""The server and worker model, compared in one interleaved run: latency at one request at a time,
throughput at sixteen requests at once, memory of the LiteLLM process tree (RSS and PSS) and so requests
per second per GiB; and worker restarts while starting with one core kept busy (the failure that made
uvicorn with two workers loop on a 2-core host)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench import load
from bench.local import BENCH_WORD_PAUSE_MS, Target, memory_mib
from harness.ports import free_port
from harness.processes import THIS_BUILD, LiteLLMBuild, Process, start_fake_backend, start_litellm, worker_restarts
from tailnet_llm_gateway.gateway_process import Server

VARIANTS: tuple[tuple[Server, int], ...] = (
    ("granian", 1),
    ("granian", 2),
    ("uvicorn", 1),
    ("uvicorn", 2),
    ("gunicorn", 2),
)


def compare(work: Path, config_for, rounds: int, requests: int, build: LiteLLMBuild = THIS_BUILD) -> dict:
    """Every variant running at once against one fast backend, measured in interleaved rounds (so machine
    noise hits them alike): latency at one request at a time, throughput at sixteen, then the memory of
    each process tree, warm."""
    logs = work / "logs-servers"
    logs.mkdir(parents=True)
    backend_port = free_port()
    backend = start_fake_backend(backend_port, "backend-servers", logs, BENCH_WORD_PAUSE_MS, 0.0)
    key = "sk-bench-servers-0123456789"
    running: dict[str, tuple[Process, Target, float]] = {}
    try:
        config = config_for(backend_port)
        for server, workers in VARIANTS:
            name = f"{server}-{workers}"
            started = time.monotonic()
            port = free_port()
            gateway = start_litellm(config, port, logs, key, workers, server, name, build=build, ready_within_s=180)
            target = Target(name, f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"})
            running[name] = (gateway, target, time.monotonic() - started)
        targets = [target for _, target, _ in running.values()]
        quiet = load.latency(targets, "chat", rounds, requests // 2)
        busy = load.throughput(targets, "chat", rounds, requests)
        results = {}
        for name, (gateway, _, ready_s) in running.items():
            memory = memory_mib(gateway.popen.pid)
            results[name] = {
                "ready_s": ready_s,
                "p50_ms_c1": quiet[name]["p50_ms"],
                "rps_c16": busy[name]["rps"],
                **memory,
                "rps_per_gib_pss": busy[name]["rps"] / (memory["pss_mib"] / 1024),
            }
    finally:
        for gateway, _, _ in running.values():
            gateway.stop()
        backend.stop()
    return results


def loaded_startups(work: Path, config: Path, server: Server, workers: int, starts: int, build=THIS_BUILD) -> dict:
    """Start LiteLLM `starts` times while another process keeps one core busy; count worker restarts."""
    logs = work / f"logs-startups-{server}-{workers}"
    logs.mkdir(parents=True)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    times, restarts = [], []
    try:
        for index in range(starts):
            started = time.monotonic()
            port = free_port()
            key = "sk-bench-starts-0123456789"
            gateway = start_litellm(
                config, port, logs, key, workers, server, f"start-{index}", build=build, ready_within_s=180
            )
            times.append(time.monotonic() - started)
            # A worker that dies a few seconds after the first answer is still a restart: wait, then count.
            time.sleep(5)
            httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=10)
            gateway.stop()
            restarts.append(worker_restarts(gateway.log_path.read_text(errors="replace"), server, workers))
    finally:
        burner.kill()
        burner.wait(timeout=10)
    return {
        "server": server,
        "workers": workers,
        "starts": starts,
        "worker_restarts": sum(restarts),
        "ready_s": [round(t, 1) for t in times],
    }
