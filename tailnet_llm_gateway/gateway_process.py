"""How LiteLLM is started: one argv and environment for the container, the live tests and the benchmark,
so the figures and the tests are for what ships.

The default server is Granian, started directly (not through `litellm --run_granian`), with one worker.
At one worker Granian and uvicorn serve alike (docs/benchmark.md). Granian is the default for what happens
beyond one worker: its supervisor never imports LiteLLM, so a second worker costs one more LiteLLM and not
a master holding a full import that serves nothing, and it has no health ping that kills a worker still
importing LiteLLM (uvicorn does that on a busy host, and a start-up can loop). LiteLLM reads its config
from CONFIG_FILE_PATH when a server other than its own CLI imports the app.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from policy.gateway_contract import EDGE_KEY_ENV, MASTER_KEY_ENV

Server = Literal["granian", "uvicorn", "gunicorn"]
APP = "litellm.proxy.proxy_server:app"
# LiteLLM's run-time switches; every start (container, live tests, benchmark) gets them through
# GatewayProcess.env.
GATEWAY_ENV = {
    # The admin UI and Swagger are not needed behind the edge; serving less is safer.
    "DISABLE_ADMIN_UI": "True",
    "NO_DOCS": "True",
    # Use the packaged model cost map instead of fetching one from the internet at start.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # The one retry of a failed backend call (router_settings.num_retries) waits 0.1-0.2 s, not LiteLLM's
    # 0.5 s plus up to 0.75 s of jitter: a client learns sooner that a lone backend is down, and a second
    # backend takes over as fast.
    "INITIAL_RETRY_DELAY": "0.1",
    "JITTER": "0.1",
    # Token limits count the tokens the backend reported, after each call (as docs/limits-and-usage.md says), not an
    # estimate reserved before it: LiteLLM 1.98's reservation holds at least a quarter of a minute's budget
    # for a call without max_tokens, and refuses a client that still has room.
    "LITELLM_TPM_TOKEN_RESERVATION_ENABLED": "false",
}


# The launcher next to LiteLLM's config (tailnet_llm_gateway/render/templates/gateway_start.py): it ends a replica told
# to stop before it has served at once, instead of after the drain bound.
LAUNCHER_FILE = "gateway_start.py"


@dataclass(frozen=True)
class GatewayProcess:
    """How to start LiteLLM: the launcher with the port it watches, then the server's own command (the
    interpreter LiteLLM runs under as `python3`, or LiteLLM's own `litellm` script) and its arguments, and the
    environment it needs besides its two keys."""

    entrypoint: tuple[str, ...]
    args: tuple[str, ...]
    env: Mapping[str, str]

    def local_environment(self, master_key: str, edge_key: str) -> dict[str, str]:
        """The whole environment outside a container: the switches and the two keys (the container gets
        the keys as Pulumi secrets under the same names)."""
        return {**self.env, MASTER_KEY_ENV: master_key, EDGE_KEY_ENV: edge_key}

    def local_argv(self, python: str, litellm: str) -> list[str]:
        """The same start outside a container: this interpreter for `python3`, this `litellm` script."""
        local = {"python3": python, "litellm": litellm}
        return [local.get(word, word) for word in self.entrypoint] + list(self.args)


def gateway_process(server: Server, workers: int, config_path: str, host: str, port: int) -> GatewayProcess:
    launcher = ("python3", posixpath.join(posixpath.dirname(config_path), LAUNCHER_FILE), str(port))
    if server == "granian":
        # The official image puts its venv (LiteLLM, and granian from the `proxy` extra) first on PATH
        # (docker/Dockerfile.non_root), so its python3 is LiteLLM's interpreter (tests/test_pins.py).
        args = ("--interface", "asgi", "--host", host, "--port", str(port), "--workers", str(workers), APP)
        entrypoint = (*launcher, "python3", "-m", "granian")
        return GatewayProcess(entrypoint, args, {**GATEWAY_ENV, "CONFIG_FILE_PATH": config_path})
    flags = ("--run_gunicorn",) if server == "gunicorn" else ()
    args = ("--config", config_path, "--host", host, "--port", str(port), "--num_workers", str(workers), *flags)
    return GatewayProcess((*launcher, "litellm"), args, dict(GATEWAY_ENV))
