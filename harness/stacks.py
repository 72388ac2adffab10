"""The stacks the tests and the benchmark run: the repository's stack files and the examples users copy
(examples/), read by the product's own reader, and the test stacks built on them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from policy.gateway_contract import BEARER, TAILNET, TAILNET_NODE
from tailnet_llm_gateway.settings import PROJECT
from tailnet_llm_gateway.settings.sources import read_stack_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# The clients' stack: a dev stack (tailnet-node by default, or host-bind), plus a second backend for
# local-chat, a browser origin for the API, two named clients (laptop: everything; ci: /llm/* and
# local-chat only), a second bearer route (/mcp/* to an MCP server, laptop only) and, on a tailnet node, a
# tailnet route (/tsllm/*, for callers the policy grants).
ALLOWED_ORIGIN = "https://chat.example.com"
# Requests "from the gateway's node" (as serve sends them) come from this loopback address.
NODE_ADDRESS = "127.0.0.2"
CLIENTS_STACK = "clients"
EXPOSURE_STACKS = ("dev-node", "dev")


def stack_values(stack: str = "dev", directory: Path = ROOT) -> dict[str, Any]:
    """The project's settings from Pulumi.<stack>.yaml, as the render CLI reads them (without namespaces)."""
    return read_stack_file(directory / f"Pulumi.{stack}.yaml")


def is_tailnet_node(values: dict[str, Any]) -> bool:
    return values.get("exposure", TAILNET_NODE) == TAILNET_NODE


def write_stack(project_dir: Path, stack: str, values: dict, extra: dict | None = None) -> Path:
    """Write a Pulumi.<stack>.yaml with namespaced keys (plus `extra` raw keys) into project_dir."""
    config = {f"{PROJECT}:{k}": v for k, v in values.items()}
    config.update(extra or {})
    path = project_dir / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


def new_project(directory: Path, stack: str, values: dict) -> Path:
    """A project directory with the repository's Pulumi.yaml and tailnet files and one stack file."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", directory)
    shutil.copytree(ROOT / "tailnet", directory / "tailnet", dirs_exist_ok=True)
    write_stack(directory, stack, values)
    return directory


def clients_stack_values(base: str = "dev-node") -> dict[str, Any]:
    values = stack_values(base)
    values["services"]["llamacpp-b"] = {"port": 8080, "networks": ["backend"]}
    values["services"]["mcp-server"] = {"port": 8000, "networks": ["proxy-net"]}
    values["models"]["local-chat"] = {
        "backends": [{"service": "llamacpp"}, {"service": "llamacpp-b"}],
        "model": "local-chat",
    }
    api = next(r for r in values["routes"] if r["auth"] == BEARER)
    api["corsOrigins"] = [ALLOWED_ORIGIN]
    values["routes"].append(
        {
            "path": "/mcp/*",
            "upstream": "mcp-server",
            "stripPrefix": True,
            "auth": BEARER,
            "allowPaths": ["/sse", "/messages/*"],
        }
    )
    if is_tailnet_node(values):
        values["routes"].append({"path": "/tsllm/*", "upstream": "model-gateway", "stripPrefix": True, "auth": TAILNET})
    values["clients"] = {"laptop": {}, "ci": {"routes": ["/llm/*"], "models": ["local-chat"]}}
    return values


# The limits' stack: the clients' stack on a tailnet node with a client per limit (laptop: requests a
# minute; ci: tokens a minute; streamer: streams at once; hostile and breaker: requests a minute, for the
# hostile client's tricks; writer: a realistic token budget), three without limits (free, meter, bystander),
# and each tailnet caller limited to requests a minute.
LIMITS_STACK = "limits"
LIMITED_REQUESTS = 3
LIMITED_TOKENS = 60
LIMITED_STREAMS = 2
TAILNET_REQUESTS = 2
WRITER_TOKENS = 2000


def limits_stack_values() -> dict[str, Any]:
    values = clients_stack_values("dev-node")
    by_requests = {"limits": {"requestsPerMinute": LIMITED_REQUESTS}}
    values["clients"] = {
        "laptop": by_requests,
        "hostile": by_requests,
        "breaker": by_requests,
        "writer": {"limits": {"tokensPerMinute": WRITER_TOKENS}},
        "ci": {"routes": ["/llm/*"], "models": ["local-chat"], "limits": {"tokensPerMinute": LIMITED_TOKENS}},
        "streamer": {"limits": {"concurrent": LIMITED_STREAMS}},
        "free": {},
        "meter": {},
        "bystander": {},
    }
    values["limits"] = {"tailnet": {"requestsPerMinute": TAILNET_REQUESTS}}
    return values


# The remote stack: the example with models on several machines (examples/Pulumi.several-machines.yaml:
# the dev-node stack with two more GPU machines on the tailnet; local-chat spread over the local llama.cpp
# container and gpu-2, remote-chat on gpu-3 only), on a tailnet node or (base "dev") in host-bind mode.
REMOTE_MACHINES = {"gpu-2": "100.88.0.2", "gpu-3": "100.88.0.3"}
REMOTE_PORT = 8080
# What makes the dev stack host-bind rather than tailnet-node.
_HOST_BIND_KEYS = ("exposure", "tailnetHost", "tailnetIp", "tls")


def as_host_bind(values: dict[str, Any]) -> dict[str, Any]:
    """The same stack in host-bind mode, facing the tailnet as Pulumi.dev.yaml does."""
    dev = stack_values("dev")
    values = {k: v for k, v in values.items() if k != "node"}
    return {**values, **{k: dev[k] for k in _HOST_BIND_KEYS}}


def remote_stack_values(base: str = "dev") -> dict[str, Any]:
    values = stack_values("several-machines", EXAMPLES)
    return values if is_tailnet_node(stack_values(base)) else as_host_bind(values)


# The tailnet apps' stack: the example with browser apps by tailnet identity (examples/Pulumi.tailnet-apps.
# yaml: the dev-node stack with Open WebUI at /* told the login and name in the headers it trusts, the
# dashboard at /dash/* for another audience, and no oauth2-proxy at all).
TAILNET_APPS_STACK = "tailnet-apps"
WEBUI_IDENTITY = {"email": "X-Forwarded-Email", "name": "X-Forwarded-Name"}


def tailnet_apps_stack_values() -> dict[str, Any]:
    return stack_values(TAILNET_APPS_STACK, EXAMPLES)


# The real tailnet's stack (tests/engine/test_real_tailnet.py): the tailnet apps' stack joined to the test
# control server, with a tailnet API route (/tsllm/*), a client key for the API (laptop), a CI machine
# (tag:ci) among the audiences, the test tailnet's base policy, and local-chat spread over the local
# llama.cpp and another machine of the tailnet (gpu-2: the first device to join the test control server,
# which numbers devices 100.64.0.1, .2, ... in the order they join), which also serves remote-chat alone.
REAL_TAILNET_BASE = "harness/testnet/base.hujson"
CI_TAG = "tag:ci"
REAL_MACHINE, REAL_MACHINE_ADDRESS = "gpu-2", "100.64.0.1"


def real_tailnet_stack_values(login_server: str) -> dict[str, Any]:
    values = tailnet_apps_stack_values()
    values["routes"].insert(
        len(values["routes"]) - 1,
        {"path": "/tsllm/*", "upstream": "model-gateway", "stripPrefix": True, "auth": TAILNET},
    )
    values["clients"] = {"laptop": {}}
    values["node"] = {**values.get("node", {}), "loginServer": login_server}
    policy = values["tailnetPolicy"]
    policy.update(base=REAL_TAILNET_BASE, audiences=[*policy["audiences"], CI_TAG], manage=False)
    values["machines"] = {REAL_MACHINE: {"address": REAL_MACHINE_ADDRESS}}
    values["services"][f"llamacpp-{REAL_MACHINE}"] = {"port": REMOTE_PORT, "machine": REAL_MACHINE}
    values["models"]["local-chat"] = {
        "backends": [{"service": "llamacpp"}, {"service": f"llamacpp-{REAL_MACHINE}"}],
        "model": "local-chat",
    }
    values["models"]["remote-chat"] = {"backend": f"llamacpp-{REAL_MACHINE}", "model": "remote-chat"}
    return values


# Every stack the tests render, by name: the stack files, the examples, and the test stacks built on them.
TEST_STACKS: dict[str, Callable[[], dict[str, Any]]] = {
    "dev": lambda: stack_values("dev"),
    "dev-node": lambda: stack_values("dev-node"),
    CLIENTS_STACK: lambda: clients_stack_values("dev-node"),
    "remote (host-bind)": lambda: remote_stack_values("dev"),
    "remote (tailnet-node)": lambda: remote_stack_values("dev-node"),
    TAILNET_APPS_STACK: tailnet_apps_stack_values,
    "gpu-box": lambda: stack_values("gpu-box", EXAMPLES),
    "team": lambda: stack_values("team", EXAMPLES),
}
