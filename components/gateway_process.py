"""How LiteLLM is started: one argv and environment for the container, the live tests and the benchmark,
so the figures and the tests are for what ships.

The default server is Granian, started directly (not through `litellm --run_granian`), with one worker.
Measured on a 2-core host with every variant running and measured in interleaved rounds (`python -m
bench`): at one worker Granian and uvicorn are within a millisecond and 10% of throughput of each other
(Granian 8.8 ms and 130 req/s at 16 concurrent, 343 MiB RSS; uvicorn 9.4 ms, 125 req/s, 309 MiB). Granian
is the default for what happens beyond one worker: its supervisor never imports LiteLLM, so a second
worker costs one more LiteLLM (651 MiB in all, against 897 MiB for uvicorn, whose master holds a full
import and serves nothing), and it has no health ping that kills a worker still importing LiteLLM (with
two workers on a busy 2-core host uvicorn did that, and a start-up could loop). A second worker did not
raise throughput on 2 cores, which the client and the edge share. LiteLLM reads its config from
CONFIG_FILE_PATH when a server other than its own CLI imports the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Server = Literal["granian", "uvicorn", "gunicorn"]
APP = "litellm.proxy.proxy_server:app"


@dataclass(frozen=True)
class GatewayProcess:
    """How to start LiteLLM: an entrypoint (None: the image's own, which runs `litellm "$@"`), its
    arguments, and the environment it needs besides the master key."""

    entrypoint: tuple[str, ...] | None
    args: tuple[str, ...]
    env: Mapping[str, str]

    def local_argv(self, python: str, litellm: str) -> list[str]:
        """The same start outside a container: this interpreter for `python3`, this `litellm` script."""
        entrypoint = [litellm] if self.entrypoint is None else [python, *self.entrypoint[1:]]
        return [*entrypoint, *self.args]


def gateway_process(server: Server, workers: int, config_path: str, host: str, port: int) -> GatewayProcess:
    if server == "granian":
        # The official image puts its venv (LiteLLM, and granian from the `proxy` extra) first on PATH
        # (docker/Dockerfile.non_root), so its python3 is LiteLLM's interpreter (tests/test_pins.py).
        args = ("--interface", "asgi", "--host", host, "--port", str(port), "--workers", str(workers), APP)
        return GatewayProcess(("python3", "-m", "granian"), args, {"CONFIG_FILE_PATH": config_path})
    flags = ("--run_gunicorn",) if server == "gunicorn" else ()
    args = ("--config", config_path, "--host", host, "--port", str(port), "--num_workers", str(workers), *flags)
    return GatewayProcess(None, args, {})
