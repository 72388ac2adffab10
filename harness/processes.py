"""Start and stop the real binaries (Caddy, LiteLLM, the stub backends) on loopback, for the live tests and
the benchmark: free ports, bounded waits, every process reaped."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from policy.gateway_contract import EDGE_KEY_FILE, MASTER_KEY_FILE, client_key_file
from tailnet_llm_gateway.gateway_process import Server, gateway_process

from .stacks import ROOT

BIN_DIR = Path(sys.executable).parent
# The edge's own key toward LiteLLM, as the stack generates one: every Caddy and LiteLLM a test starts
# shares it unless the test says otherwise.
EDGE_KEY = "sk-" + secrets.token_urlsafe(24)


def binary(name: str) -> Path:
    """A console script installed by the project's requirements into this interpreter's environment."""
    path = BIN_DIR / name
    if not path.exists():
        raise RuntimeError(f"{name} is not installed next to {sys.executable}; install requirements-dev.txt")
    return path


@dataclass(frozen=True)
class LiteLLMBuild:
    """Where LiteLLM comes from: this environment (the pinned release), or another virtualenv's bin
    directory (the benchmark's `--compare-venv`), to measure another release side by side."""

    bin_dir: Path

    @property
    def python(self) -> str:
        return str(self.bin_dir / "python")

    @property
    def litellm(self) -> str:
        return str(self.bin_dir / "litellm")

    @property
    def version(self) -> str:
        code = "from importlib.metadata import version; print(version('litellm'))"
        return subprocess.run([self.python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()


THIS_BUILD = LiteLLMBuild(BIN_DIR)


def seconds_until(check: Callable[[], bool], timeout_s: float, every_s: float = 0.25) -> float | None:
    """Seconds (to 0.01) until check() holds, asked every `every_s`; None if it did not within timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return round(time.monotonic() - started, 2)
        time.sleep(every_s)
    return None


class Process:
    """A child process whose output goes to a log file; `stop()` always reaps it."""

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None, cwd=None, group=False
    ):
        self.name, self.group = name, group
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open for the process's life, closed by stop()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        full_env.update(env or {})
        # group: a process group of its own, so that kill_group() ends it with every process it started.
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, start_new_session=group
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_http(self, url: str, timeout_s: float, ok=lambda r: r.status_code < 500) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if ok(httpx.get(url, timeout=2)):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready at {url} within {timeout_s}s:\n{self.log_tail()}")

    def kill_group(self) -> None:
        """Kill the process and everything it started at once, as a container dying would (needs group)."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self._log.close()

    def kill(self) -> None:
        """Stop at once, as a crash or a pulled cable would: no graceful shutdown."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # Past the bound: end it, and in a group of its own every process it started (nothing outlives
                # the test).
                if self.group:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                else:
                    self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


def render(
    stack: str,
    out: Path,
    project_dir: Path,
    upstreams: dict[str, int],
    listen_port: int,
    node_address: str | None = None,
    metrics_port: int | None = None,
    forward_port: int | None = None,
    egress_port: int | None = None,
) -> Path:
    """Run the render CLI (the contract under test) onto loopback addresses."""
    argv = [sys.executable, "-m", "tailnet_llm_gateway", "render", "--stack", stack, "--out", str(out)]
    argv += ["--listen", f"127.0.0.1:{listen_port}"]
    if forward_port is not None:
        argv += ["--forward-listen", f"127.0.0.1:{forward_port}"]
    if egress_port is not None:
        argv += ["--egress-proxy", f"127.0.0.1:{egress_port}"]
    if metrics_port is not None:
        argv += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    if node_address is not None:
        argv += ["--node-address", node_address]
    for service, port in sorted(upstreams.items()):
        argv += ["--upstream", f"{service}=127.0.0.1:{port}"]
    if project_dir is not None:
        argv += ["--project-dir", str(project_dir)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"render failed: {result.stderr}")
    return out


def write_edge_keys(keys_dir: Path, master_key: str, client_keys: dict[str, str], edge_key: str = EDGE_KEY) -> None:
    """The edge's key files, as its keys writer puts them: its own key, the master key, each client's."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    files = {EDGE_KEY_FILE: edge_key, MASTER_KEY_FILE: master_key}
    files |= {client_key_file(client): key for client, key in client_keys.items()}
    for file_name, key in files.items():
        (keys_dir / file_name).write_text(key)


def start_caddy(
    caddyfile: Path,
    port: int,
    log_dir: Path,
    key: str,
    name: str = "caddy",
    client_keys: dict[str, str] | None = None,
    edge_key: str = EDGE_KEY,
) -> Process:
    """Caddy as the edge container runs it, plus `--watch` so the live tests' own rewrites of its Caddyfile
    load (the deployed edge is told to load each new file by `pulumi up`), with its key files written next to
    the Caddyfile (render --listen's default keys directory): `key` is the master key (the one client's without named
    clients), `client_keys` each named client's, `edge_key` the edge's own toward LiteLLM."""
    write_edge_keys(caddyfile.parent / "keys", key, client_keys or {}, edge_key)
    proc = Process(
        name,
        [str(binary("caddy")), "run", "--config", str(caddyfile), "--adapter", "caddyfile", "--watch"],
        log_dir,
        env={
            "HOME": str(log_dir),
            "XDG_DATA_HOME": str(log_dir / f"{name}-data"),
            "XDG_CONFIG_HOME": str(log_dir / f"{name}-config"),
        },
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=20)
    except Exception:
        proc.stop()
        raise
    return proc


def start_litellm(
    config: Path,
    port: int,
    log_dir: Path,
    key: str,
    workers: int = 1,
    server: Server = "granian",
    name: str = "litellm",
    edge_key: str = EDGE_KEY,
    build: LiteLLMBuild = THIS_BUILD,
    ready_within_s: float = 90,
) -> Process:
    """LiteLLM started as the container starts it (tailnet_llm_gateway/gateway_process.py), on loopback; `key` is
    its master key."""
    process = gateway_process(server, workers, str(config), "127.0.0.1", port)
    proc = Process(
        name,
        process.local_argv(build.python, build.litellm),
        log_dir,
        env={**process.local_environment(key, edge_key), "HOME": str(log_dir)},
        # Always a group of its own: the launcher, the server and its workers end together.
        group=True,
    )
    try:
        proc.wait_http(
            f"http://127.0.0.1:{port}/health/liveliness", timeout_s=ready_within_s, ok=lambda r: r.status_code == 200
        )
    except Exception:
        proc.stop()
        raise
    return proc


def start_fake_backend(
    port: int, name: str, log_dir: Path, word_pause_ms: float | None = None, delay_ms: float | None = None
) -> Process:
    """The stub OpenAI-compatible backend (harness/fakes) in its own process, so a test can stop it as a
    crash would and the benchmark's client does not share its interpreter: `delay_ms` before each answer,
    `word_pause_ms` between streamed words."""
    argv = [sys.executable, "-m", "harness.fakes", "--port", str(port), "--name", name]
    if word_pause_ms is not None:
        argv += ["--stream-pause-ms", str(word_pause_ms)]
    if delay_ms is not None:
        argv += ["--delay-ms", str(delay_ms)]
    proc = Process(name, argv, log_dir, cwd=ROOT)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/v1/models", timeout_s=20, ok=lambda r: r.status_code == 200)
    except Exception:
        proc.stop()
        raise
    return proc


# The line each server writes when it starts a worker process (uvicorn: also for its one in-process worker).
_WORKER_STARTED = {
    "granian": "Spawning worker-",
    "gunicorn": "Booting worker with pid",
    "uvicorn": "Started server process",
}


def worker_restarts(log: str, server: Server, workers: int) -> int:
    """How many workers a server started beyond the ones it was asked for: each one replaced a worker
    that died or was killed (uvicorn kills one that misses its health ping while importing LiteLLM)."""
    return max(0, log.count(_WORKER_STARTED[server]) - workers)
