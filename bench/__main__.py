"""What the gateway costs the models beside it, measured in one run: `python -m bench`.

- the edge hop (Caddy, the rendered Caddyfile) and LiteLLM's overhead over the backend alone, at one
  request at a time (p50/p90/p99) against a 0 ms and a 50 ms backend; throughput at sixteen at once; the
  first streamed chunk; LiteLLM's CPU per request. Targets are interleaved round by round, so machine
  noise hits them alike; the backend stub sets TCP_NODELAY;
- the server and worker model: RSS/PSS of LiteLLM's process tree, requests per second per GiB, and
  worker restarts in ten start-ups with one core kept busy;
- on the real Docker engine (when one answers): time to healthy, and what each operator's change costs
  under load (failed requests, cut streams, worst latency), with two LiteLLM replicas and with one;
- per-client limits and metrics on against off, side by side (bench/limits.py);
- render and mock evaluation time at 10, 100 and 1,000 routes and models.

Prints a table and writes every figure as JSON. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from bench import engine_figures, limits, load, servers
from bench.local import THIS_BUILD, LiteLLMBuild, LocalStack
from harness.engine.traffic import Window
from harness.engine.traffic import table as soak_table
from harness.processes import render
from tailnet_llm_gateway.cli import load_plan

ROOT = Path(__file__).resolve().parent.parent
# Targets, on this machine, same run.
TARGETS = {
    "edge_hop_p50_ms": ("<=", 0.5),
    "litellm_overhead_p50_ms_0ms": ("<=", 8.0),
    "gateway_ratio_p50_50ms": ("<=", 1.15),
    "litellm_rps_c16": (">=", 150.0),
    "first_chunk_overhead_ms": ("<=", 8.0),
    "default_rss_mib": ("<=", 400.0),
    "default_worker_restarts": ("<=", 0),
    "limits_metrics_overhead_p50_ms": ("<=", 1.0),
}


def _machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    memory = Path("/proc/meminfo").read_text().split()[1] if Path("/proc/meminfo").exists() else "0"
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(int(memory) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _overheads(figures: dict, base: str, over: str) -> dict:
    return {f"{p}_ms": figures[over][f"{p}_ms"] - figures[base][f"{p}_ms"] for p in ("p50", "p90", "p99")}


def measure_paths(work: Path, args, build: LiteLLMBuild) -> dict:
    gateway = load_plan("dev").topology.gateway
    server, workers = args.server or gateway.server, args.workers or gateway.workers
    results: dict = {"server": server, "workers": workers, "litellm": build.version}
    stack = LocalStack(work, "fast", 0.0, server, workers, build)
    try:
        targets = [stack.backend, stack.litellm, stack.edge, stack.edge_direct, stack.pass_through]
        chat = load.latency(targets, "chat", args.rounds, args.requests)
        models = load.latency([stack.litellm, stack.edge], "models", args.rounds, args.requests)
        busy = load.throughput(targets, "chat", args.rounds, args.requests * 2)
        firsts = load.first_chunk(targets, args.rounds * 6)
        cpu = load.cpu_per_request(stack.litellm, stack.gateway.popen.pid, args.requests * 3)
        results |= {
            "chat_c1": chat,
            "models_c1": models,
            "chat_c16": busy,
            "first_chunk": firsts,
            "litellm_overhead_0ms": _overheads(chat, "backend", "litellm"),
            "pass_through_overhead_0ms": _overheads(chat, "backend", "litellm-pass-through"),
            "edge_hop_chat": _overheads(chat, "litellm", "edge"),
            "edge_alone_chat": _overheads(chat, "backend", "edge-direct"),
            "edge_hop_models": _overheads(models, "litellm", "edge"),
            "litellm_cpu_ms_per_request": cpu,
        }
    finally:
        stack.stop()
    slow = LocalStack(work, "slow", args.slow_ms, server, workers, build)
    try:
        targets = [slow.backend, slow.litellm, slow.edge]
        chat = load.latency(targets, "chat", args.rounds, args.requests)
        results |= {"chat_c1_slow": chat, "litellm_overhead_slow": _overheads(chat, "backend", "litellm")}
    finally:
        slow.stop()
    return results


def measure_growth(sizes: tuple[int, ...]) -> dict:
    from bench.generated_stack import generated_values, render_stack
    from harness.program_run import run_program

    asyncio.set_event_loop(asyncio.new_event_loop())  # the Pulumi SDK needs one; asyncio.run left none
    found = {}
    for size in sizes:
        values = generated_values(size, size)
        started = time.perf_counter()
        render_stack(values)
        render_s = time.perf_counter() - started
        started = time.perf_counter()
        run_program(values)
        found[str(size)] = {"render_s": render_s, "evaluate_s": time.perf_counter() - started}
    return found


def summary(results: dict) -> dict:
    paths = results["paths"]
    chat, slow = paths["chat_c1"], paths["chat_c1_slow"]
    default = f"{paths['server']}-{paths['workers']}"
    memory = results["servers"].get(default, {})
    return {
        "edge_hop_p50_ms": paths["edge_alone_chat"]["p50_ms"],
        "edge_hop_before_litellm_p50_ms": paths["edge_hop_chat"]["p50_ms"],
        "edge_hop_ratio_chat": chat["edge"]["p50_ms"] / chat["litellm"]["p50_ms"],
        "edge_hop_ratio_models": paths["models_c1"]["edge"]["p50_ms"] / paths["models_c1"]["litellm"]["p50_ms"],
        "litellm_overhead_p50_ms_0ms": paths["litellm_overhead_0ms"]["p50_ms"],
        "litellm_overhead_p90_ms_0ms": paths["litellm_overhead_0ms"]["p90_ms"],
        "litellm_overhead_p99_ms_0ms": paths["litellm_overhead_0ms"]["p99_ms"],
        "litellm_overhead_p50_ms_50ms": paths["litellm_overhead_slow"]["p50_ms"],
        "litellm_overhead_p90_ms_50ms": paths["litellm_overhead_slow"]["p90_ms"],
        "litellm_overhead_p99_ms_50ms": paths["litellm_overhead_slow"]["p99_ms"],
        "gateway_ratio_p50_50ms": slow["edge"]["p50_ms"] / slow["backend"]["p50_ms"],
        "litellm_rps_c16": paths["chat_c16"]["litellm"]["rps"],
        "edge_rps_c16": paths["chat_c16"]["edge"]["rps"],
        "edge_direct_rps_c16": paths["chat_c16"]["edge-direct"]["rps"],
        "backend_rps_c16": paths["chat_c16"]["backend"]["rps"],
        "first_chunk_overhead_ms": paths["first_chunk"]["litellm"]["p50_ms"]
        - paths["first_chunk"]["backend"]["p50_ms"],
        "first_chunk_edge_hop_ms": paths["first_chunk"]["edge"]["p50_ms"] - paths["first_chunk"]["litellm"]["p50_ms"],
        "litellm_cpu_ms_per_request": paths["litellm_cpu_ms_per_request"],
        # What-if: LiteLLM's pass-through endpoint instead of its router (bench/local.py says what it skips).
        "pass_through_overhead_p50_ms_0ms": paths["pass_through_overhead_0ms"]["p50_ms"],
        "pass_through_rps_c16": paths["chat_c16"]["litellm-pass-through"]["rps"],
        "pass_through_first_chunk_overhead_ms": paths["first_chunk"]["litellm-pass-through"]["p50_ms"]
        - paths["first_chunk"]["backend"]["p50_ms"],
        "default_rss_mib": memory.get("rss_mib", float("nan")),
        "default_pss_mib": memory.get("pss_mib", float("nan")),
        "default_worker_restarts": results["startups"]["worker_restarts"],
        **limits_summary(results["limits"]),
    }


def limits_summary(figures: dict) -> dict:
    busy = figures["chat_c16"]
    return {
        "limits_metrics_overhead_p50_ms": figures["overhead"]["p50_ms"],
        "limits_metrics_overhead_p99_ms": figures["overhead"]["p99_ms"],
        "limits_metrics_rps_ratio_c16": busy[limits.ON]["rps"] / busy[limits.OFF]["rps"],
    }


def limits_table(figures: dict) -> list[str]:
    lines = [f"{'limits and metrics, through the edge':<38}{'p50':>8}{'p90':>8}{'p99':>8}{'req/s c16':>11}"]
    for name, v in figures["chat_c1"].items():
        row = "".join(f"{v[f'{p}_ms']:>8.2f}" for p in ("p50", "p90", "p99"))
        lines.append(f"{name:<38}{row}{figures['chat_c16'][name]['rps']:>11.1f}")
    return lines


def _verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    sign, limit = TARGETS[name]
    met = value <= limit if sign == "<=" else value >= limit
    return f"{sign} {limit:g}  {'met' if met else 'MISSED'}"


def _rounded(figures: dict) -> dict:
    return {k: round(v, 1) for k, v in figures.items()}


def table(results: dict) -> str:
    lines = [
        f"machine: {results['machine']}",
        f"gateway: LiteLLM {results['paths']['litellm']} on "
        f"{results['paths']['server']} x{results['paths']['workers']}",
        "",
        f"{'figure':<38}{'value':>12}  target",
    ]
    for name, value in results["summary"].items():
        lines.append(f"{name:<38}{value:>12.3f}  {_verdict(name, value)}")
    lines += ["", "latency at one request at a time (ms)", f"{'path':<38}{'p50':>8}{'p90':>8}{'p99':>8}"]
    for label, key in (("0 ms backend", "chat_c1"), ("50 ms backend", "chat_c1_slow")):
        for target, figures in results["paths"][key].items():
            row = "".join(f"{figures[f'{p}_ms']:>8.2f}" for p in ("p50", "p90", "p99"))
            lines.append(f"{target + ', ' + label:<38}{row}")
    lines += [
        "",
        "server and workers",
        f"{'variant':<14}{'p50 ms c1':>10}{'RSS MiB':>9}{'PSS MiB':>9}{'req/s c16':>11}{'req/s/GiB':>11}{'ready s':>9}",
    ]
    for name, v in results["servers"].items():
        lines.append(
            f"{name:<14}{v['p50_ms_c1']:>10.2f}{v['rss_mib']:>9.0f}{v['pss_mib']:>9.0f}{v['rps_c16']:>11.1f}"
            f"{v['rps_per_gib_pss']:>11.1f}{v['ready_s']:>9.1f}"
        )
    start = results["startups"]
    lines += [
        "",
        f"start-ups with one core busy: {start['starts']} x {start['server']}-{start['workers']}, "
        f"{start['worker_restarts']} worker restarts, ready after {start['ready_s']} s",
    ]
    lines += ["", *limits_table(results["limits"])]
    engine = results["engine"]
    if "skipped" in engine:
        lines += ["", f"real engine: {engine['skipped']}"]
    else:
        lines += ["", f"real engine: time to healthy {_rounded(engine['time_to_healthy_s'])} s"]
        for key, title in (("soak", "two LiteLLM replicas (the default)"), ("soak_one_replica", "one replica")):
            windows = [Window(**w) for w in engine[key]]
            lines += ["", soak_table(windows, f"each change under load (8 clients, 2 streams of 30 s), {title}")]
    lines += ["", "growth", f"{'routes+models':<16}{'render s':>10}{'evaluate s':>12}"]
    for size, v in results["growth"].items():
        lines.append(f"{size:<16}{v['render_s']:>10.3f}{v['evaluate_s']:>12.3f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds per figure")
    parser.add_argument("--requests", type=int, default=50, help="requests per target per round")
    parser.add_argument("--slow-ms", type=float, default=50.0, help="the slow backend's time to answer")
    parser.add_argument("--starts", type=int, default=10, help="loaded start-ups to count restarts over")
    parser.add_argument("--server", choices=("granian", "uvicorn", "gunicorn"), help="default: the dev stack's")
    parser.add_argument("--workers", type=int, help="default: the dev stack's")
    parser.add_argument("--compare-venv", type=Path, help="another virtualenv's bin directory with LiteLLM")
    parser.add_argument("--no-engine", action="store_true", help="skip the real-engine figures")
    parser.add_argument("--limits-only", action="store_true", help="only limits and metrics on against off")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results.json")
    args = parser.parse_args()
    build = LiteLLMBuild(args.compare_venv) if args.compare_venv else THIS_BUILD
    if args.limits_only:
        with tempfile.TemporaryDirectory() as tmp:
            figures = limits.measure(Path(tmp), args.rounds, args.requests, build)
        figures["summary"] = limits_summary(figures)
        args.json.write_text(json.dumps({"machine": _machine(), "limits": figures}, indent=2))
        print("\n".join(limits_table(figures)))
        for name, value in figures["summary"].items():
            print(f"{name:<38}{value:>12.3f}  {_verdict(name, value)}")
        return 0

    results: dict = {"machine": _machine()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("measuring the request path ...", flush=True)
        results["paths"] = measure_paths(work, args, build)

        def config_for(backend_port: int) -> Path:
            ports = {"llamacpp": backend_port, "llamacpp-embed": backend_port}
            return render("dev", work / f"rendered-servers-{backend_port}", ROOT, ports, 1) / "litellm.yaml"

        print("limits and metrics on against off ...", flush=True)
        results["limits"] = limits.measure(work, args.rounds, args.requests, build)
        print("comparing servers and worker counts ...", flush=True)
        results["servers"] = servers.compare(work, config_for, args.rounds, args.requests * 2, build)
        print("loaded start-ups ...", flush=True)
        paths = results["paths"]
        results["startups"] = servers.loaded_startups(
            work, config_for(9), paths["server"], paths["workers"], args.starts, build
        )
    print("real engine ...", flush=True)
    results["engine"] = {"skipped": "--no-engine"} if args.no_engine else engine_figures.measure()
    print("growth ...", flush=True)
    results["growth"] = measure_growth((10, 100, 1000))
    results["summary"] = summary(results)
    args.json.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nevery figure: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
