"""Plausible mistakes in a stack file, each a small edit of a dev stack file, through the render CLI.

Every one must end with exit status 2 and one line on stderr that names the setting (both routes for
overlapping routes), in both exposure modes where it applies; for the unsafe ones, nothing is rendered.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.stacks import ROOT, stack_values, write_stack
from policy.gateway_contract import TAILNET_NODE
from tailnet_llm_gateway.cli import main

BOTH = ("dev", "dev-node")


@dataclass(frozen=True)
class Mistake:
    name: str
    # An edit of the un-namespaced settings, or of the stack file's text.
    edit: Callable[[dict], None] | None = None
    text: Callable[[str], str] | None = None
    # The setting the one line must name, and anything else it must say.
    setting: str = ""
    says: tuple[str, ...] = ()
    # Unsafe: rendering it would open a hole; nothing may be written.
    unsafe: bool = False
    modes: tuple[str, ...] = BOTH
    # Extra flags for the render command.
    flags: tuple[str, ...] = ()


def add_route(**route) -> Callable[[dict], None]:
    return lambda values: values["routes"].append(route)


def route(which: str, /, **changes) -> Callable[[dict], None]:
    """Change the route whose path is `which` (a `None` value removes the key)."""

    def edit(values: dict) -> None:
        entry = next(r for r in values["routes"] if r["path"] == which)
        entry.update({k: v for k, v in changes.items() if v is not None})
        for key in [k for k, v in changes.items() if v is None]:
            entry.pop(key, None)

    return edit


def remote_backend(address: str = "100.101.102.104", **service) -> Callable[[dict], None]:
    """Add a machine gpu-2 at `address` and a service on it that backs local-chat (`service` overrides)."""

    def edit(values: dict) -> None:
        values["machines"] = {"gpu-2": {"address": address}}
        values["services"]["llamacpp-gpu2"] = {"port": 8080, "machine": "gpu-2", **service}
        values["models"]["local-chat"] = {"backends": [{"service": "llamacpp-gpu2"}], "model": "local-chat"}

    return edit


def setting(path: str, value) -> Callable[[dict], None]:
    """Set a dotted setting (`gateway.hostBind`), or delete it with `...`."""

    def edit(values: dict) -> None:
        *parents, last = path.split(".")
        target = values
        for part in parents:
            target = target.setdefault(part, {})
        if value is ...:
            target.pop(last, None)
        else:
            target[last] = value

    return edit


def rename(old: str, new: str) -> Callable[[str], str]:
    return lambda text: text.replace(old, new, 1)


MISTAKES = [
    # Routes that Caddy would resolve otherwise than the settings mean.
    Mistake(
        "upper-case twin of a protected route",
        add_route(path="/DASH/*", upstream="dashboard", auth="sso"),
        setting="routes[5].path",
        says=("routes[3]", "case-insensitively"),
    ),
    Mistake(
        "upper-case API route without the key",
        add_route(path="/LLM/*", upstream="oauth2-proxy", auth="none"),
        setting="routes[5].path",
        says=("routes[2]",),
        unsafe=True,
    ),
    Mistake(
        "mixed-case SSO bypass to oauth2-proxy",
        add_route(path="/Dash/*", upstream="oauth2-proxy", auth="none"),
        setting="routes[5].path",
        says=("routes[3]",),
        unsafe=True,
    ),
    Mistake(
        "keyless page carved out of the API",
        add_route(path="/llm/v1/admin", respond="x", auth="none"),
        setting="routes[5].path",
        says=("routes[2]", "weaker auth"),
        unsafe=True,
    ),
    Mistake(
        "open sub-prefix of a protected route",
        add_route(path="/dash/admin/*", upstream="oauth2-proxy", auth="none"),
        setting="routes[5].path",
        says=("routes[3]", "weaker auth"),
        unsafe=True,
    ),
    Mistake(
        "trailing-slash page carved out of SSO",
        add_route(path="/dash/", respond="ok", auth="none"),
        setting="routes[5].path",
        says=("routes[3]",),
        unsafe=True,
    ),
    Mistake(
        "the same prefix twice",
        add_route(path="/dash/*", upstream="open-webui", auth="sso"),
        setting="routes[5].path",
        says=("routes[3]",),
    ),
    Mistake(
        "a second catch-all",
        add_route(path="/*", upstream="dashboard", auth="sso"),
        setting="routes[5].path",
        says=("routes[4]",),
    ),
    Mistake(
        "percent-encoded path",
        add_route(path="/%64ash/*", upstream="oauth2-proxy", auth="none"),
        setting="routes[5].path",
        says=("percent-encoding",),
        unsafe=True,
    ),
    Mistake("path without a leading slash", route("/dash/*", path="dash/*"), setting="routes[3].path"),
    Mistake("wildcard inside a path", route("/dash/*", path="/da*sh/*"), setting="routes[3].path"),
    Mistake("route to an undeclared service", route("/dash/*", upstream="grafana"), setting="routes[3].upstream"),
    Mistake(
        "route to a service Caddy cannot reach",
        route("/dash/*", upstream="llamacpp"),
        setting="routes[3].upstream",
        says=("proxy-net",),
    ),
    Mistake("auth none in front of an app", route("/dash/*", auth="none"), setting="routes[3].auth", unsafe=True),
    Mistake(
        "bearer route to a web app, no allowed paths",
        route("/llm/*", upstream="open-webui"),
        setting="routes[2].allowPaths",
        unsafe=True,
    ),
    Mistake(
        "no API route at all",
        lambda v: v.update(routes=[r for r in v["routes"] if r["auth"] != "bearer"]),
        setting="routes",
        says=("bearer",),
    ),
    Mistake("fixed answer behind SSO", route("/healthz", auth="sso"), setting="routes[1]"),
    Mistake("stripPrefix on an exact path", route("/healthz", stripPrefix=True), setting="routes[1]"),
    Mistake("both upstream and respond", route("/healthz", upstream="dashboard"), setting="routes[1]"),
    Mistake("neither upstream nor respond", route("/healthz", respond=None), setting="routes[1]"),
    Mistake("allowPaths on an SSO route", route("/dash/*", allowPaths=["/x/*"]), setting="routes[3]"),
    Mistake("unknown auth mode", route("/dash/*", auth="basic"), setting="routes[3].auth"),
    Mistake(
        "sign-in path left unrouted",
        lambda v: v.update(routes=[r for r in v["routes"] if r["path"] != "/oauth2/*"]),
        setting="sso.startPath",
        says=("loop",),
    ),
    # Keys and namespaces.
    Mistake(
        "misspelt namespace",
        text=rename("tailnet-llm-gateway:timeouts", "tailnet-llm-gatway:timeouts"),
        setting="tailnet-llm-gatway:timeouts",
        says=("did you mean 'tailnet-llm-gateway'",),
    ),
    Mistake(
        "misspelt required key",
        text=rename("tailnet-llm-gateway:tailnetHost:", "tailnet-llm-gateway:tailnetHots:"),
        setting="tailnetHots",
        says=("did you mean 'tailnetHost'",),
    ),
    Mistake(
        "misspelt optional key",
        setting("gateway.hostbind", "127.0.0.1:11435"),
        setting="gateway.hostbind",
        says=("did you mean 'hostBind'",),
    ),
    Mistake(
        "misspelt route key",
        route("/dash/*", stripprefix=True),
        setting="routes[3].stripprefix",
        says=("did you mean 'stripPrefix'",),
    ),
    Mistake(
        "misspelt provider key",
        text=lambda t: t.replace("config:\n", "config:\n  tailscale:apikey: x\n", 1),
        setting="tailscale:apikey",
        says=("did you mean 'apiKey'",),
    ),
    Mistake(
        "misspelt docker key",
        text=lambda t: t.replace("config:\n", "config:\n  docker:hots: unix:///x\n", 1),
        setting="docker:hots",
        says=("did you mean 'host'",),
    ),
    Mistake(
        "misspelt stack file key",
        text=rename("config:\n", "confg:\n"),
        setting="confg",
        says=("did you mean 'config'",),
    ),
    Mistake(
        "key without a namespace",
        text=lambda t: t.replace("config:\n", "config:\n  timeouts: {}\n", 1),
        setting="timeouts",
        says=("namespace",),
    ),
    Mistake(
        "YAML syntax error",
        text=lambda t: t.replace("  tailnet-llm-gateway:gateway:\n", "  tailnet-llm-gateway:gateway:\n   bad: [\n", 1),
        says=("YAML",),
    ),
    Mistake(
        "master key in plain text",
        text=lambda t: t.replace("config:\n", "config:\n  tailnet-llm-gateway:masterKey: sk-plain-text-key\n", 1),
        setting="masterKey",
        says=("secret",),
        unsafe=True,
    ),
    # Binds and addresses.
    Mistake(
        "gateway on every interface",
        setting("gateway.hostBind", "0.0.0.0:11435"),
        setting="gateway.hostBind",
        says=("every interface",),
        unsafe=True,
    ),
    Mistake(
        "gateway on the LAN",
        setting("gateway.hostBind", "192.168.1.20:11435"),
        setting="gateway.hostBind",
        says=("loopback",),
        unsafe=True,
    ),
    Mistake(
        "edge on a LAN address", setting("tailnetIp", "192.168.1.5"), setting="tailnetIp", unsafe=True, modes=("dev",)
    ),
    Mistake(
        "edge on no address",
        setting("tailnetIp", ""),
        setting="tailnetIp",
        says=("every interface",),
        unsafe=True,
        modes=("dev",),
    ),
    Mistake(
        "host address in node mode", setting("tailnetIp", "100.101.102.103"), setting="tailnetIp", modes=("dev-node",)
    ),
    Mistake("host-bind without its certificates", setting("tls", ...), setting="tls", modes=("dev",)),
    Mistake(
        "subnet in Docker's default pools",
        setting("networks.proxy-net.subnet", "172.24.0.0/16"),
        setting="networks.proxy-net.subnet",
        says=("default address pools",),
    ),
    Mistake(
        "subnet that is not CIDR",
        setting("networks.proxy-net.subnet", "10.124.24.1/24"),
        setting="networks.proxy-net.subnet",
    ),
    Mistake(
        "existing network with a subnet",
        setting("networks.backend", {"existing": True, "subnet": "10.9.0.0/24"}),
        setting="networks.backend.subnet",
    ),
    Mistake(
        "service on an undeclared network",
        setting("services.dashboard.networks", ["proxynet"]),
        setting="services.dashboard.networks[0]",
    ),
    Mistake(
        "model on an undeclared backend",
        setting("models.local-chat.backend", "vllm"),
        setting="models.local-chat.backend",
    ),
    Mistake("port out of range", setting("services.dashboard.port", 70000), setting="services.dashboard.port"),
    Mistake("edge network not declared", setting("edge.network", "edge-net"), setting="edge.network"),
    Mistake("unknown exposure mode", setting("exposure", "public"), setting="exposure", unsafe=True),
    # Containers.
    Mistake(
        "a uid other images share",
        setting("edge.resources", {"user": "65532:65532"}),
        setting="edge.resources.user",
        says=("shared",),
    ),
    Mistake(
        "edge and gateway with one uid",
        setting("edge.resources", {"user": "61002:61002"}),
        setting="edge.resources.user",
        says=("gateway.resources.user",),
    ),
    Mistake(
        "floating image tag",
        setting("gateway.image", "ghcr.io/berriai/litellm-non_root:main-stable"),
        setting="gateway.image",
        unsafe=True,
    ),
    Mistake("no workers", setting("gateway.workers", 0), setting="gateway.workers"),
    Mistake("no replicas", setting("gateway.replicas", 0), setting="gateway.replicas"),
    Mistake(
        "the edge on the second replica's uid",
        setting("edge.resources", {"user": "61102:61102"}),
        setting="edge.resources.user",
        says=("replica",),
    ),
    Mistake(
        "a replica on a uid other images share",
        setting("gateway.resources", {"user": "65432:65432"}),
        setting="gateway.resources.user",
        says=("65532",),
    ),
    Mistake(
        "container resources under their old key",
        setting("gateway.limits", {"memoryMb": 4096}),
        setting="gateway.limits",
        says=("gateway.resources",),
    ),
    Mistake(
        "the edge's resources under their old key",
        setting("edge.limits", {"pids": 64}),
        setting="edge.limits",
        says=("edge.resources",),
    ),
    Mistake("a drain of no time", setting("timeouts.drain", 0), setting="timeouts.drain"),
    Mistake("negative timeout", setting("timeouts.request", -5), setting="timeouts.request"),
    # The tailnet policy.
    Mistake(
        "everyone may reach the gateway",
        setting("tailnetPolicy.audiences", ["*"]),
        setting="tailnetPolicy.audiences[0]",
        unsafe=True,
    ),
    Mistake("tag without its prefix", setting("tailnetPolicy.tag", "llm-gateway"), setting="tailnetPolicy.tag"),
    Mistake(
        "base policy outside the repository",
        setting("tailnetPolicy.base", "../policy.hujson"),
        setting="tailnetPolicy.base",
    ),
    Mistake(
        "base policy that is not there",
        setting("tailnetPolicy.base", "tailnet/missing.hujson"),
        setting="tailnetPolicy.base",
    ),
    # Flags of the render command.
    Mistake(
        "local check on a LAN address",
        flags=("--listen", "192.168.1.5:8080"),
        says=("--listen", "loopback"),
        unsafe=True,
    ),
    # Clients and backends.
    Mistake(
        "every origin allowed to call the API",
        route("/llm/*", corsOrigins=["*"]),
        setting="routes[2].corsOrigins",
        says=("'*' is refused",),
        unsafe=True,
    ),
    Mistake(
        "an origin with a path",
        route("/llm/*", corsOrigins=["https://chat.example.com/app"]),
        setting="routes[2].corsOrigins",
        says=("not an origin",),
    ),
    Mistake(
        "CORS origins on an SSO route",
        route("/dash/*", corsOrigins=["https://chat.example.com"]),
        setting="routes[3]",
        says=("corsOrigins applies only to bearer and tailnet routes",),
    ),
    Mistake(
        "an unknown key header",
        route("/llm/*", keyHeaders=["authorization", "cookie"]),
        setting="routes[2].keyHeaders",
    ),
    Mistake(
        "a model with both backend and backends",
        setting("models.local-chat.backends", [{"service": "llamacpp"}]),
        setting="models.local-chat",
        says=("exactly one of 'backend' and 'backends'",),
    ),
    Mistake(
        "a model with an unknown second backend",
        setting(
            "models.local-chat", {"model": "local-chat", "backends": [{"service": "llamacpp"}, {"service": "llamacp"}]}
        ),
        setting="models.local-chat.backends[1].service",
        says=("llamacpp",),
    ),
    Mistake(
        "a model listing one backend twice",
        setting(
            "models.local-chat", {"model": "local-chat", "backends": [{"service": "llamacpp"}, {"service": "llamacpp"}]}
        ),
        setting="models.local-chat.backends[1].service",
        says=("listed twice",),
    ),
    Mistake(
        "a zero weight",
        setting("models.local-chat", {"model": "local-chat", "backends": [{"service": "llamacpp", "weight": 0}]}),
        setting="models.local-chat.backends[0].weight",
    ),
    Mistake(
        "a route over the readiness report",
        add_route(path="/readyz", respond="ok", auth="none"),
        setting="routes[5].path",
        says=("/readyz",),
    ),
    # Named clients, several API routes, tailnet identity.
    Mistake(
        "a client allowed a route that is not a bearer route",
        setting("clients", {"laptop": {"routes": ["/llmm/*"]}}),
        setting="clients.laptop.routes[0]",
        says=("did you mean '/llm/*'",),
    ),
    Mistake(
        "a client allowed a model that does not exist",
        setting("clients", {"laptop": {"models": ["local-chta"]}}),
        setting="clients.laptop.models[0]",
        says=("did you mean 'local-chat'",),
    ),
    Mistake(
        "one client name twice",
        text=lambda t: t + "  tailnet-llm-gateway:clients:\n    laptop: {}\n    laptop: {models: [local-chat]}\n",
        says=("duplicate key 'laptop'",),
    ),
    Mistake(
        "a client key in plain text",
        text=lambda t: (
            t + "  tailnet-llm-gateway:clients: {laptop: {}}\n  tailnet-llm-gateway:clientKeys:\n"
            "    laptop: sk-plain-text-key\n"
        ),
        setting="clientKeys.laptop",
        says=("must be a secret",),
        unsafe=True,
    ),
    Mistake(
        "a key for a client that does not exist",
        text=lambda t: (
            t + "  tailnet-llm-gateway:clients: {laptop: {}}\n  tailnet-llm-gateway:clientKeys:\n"
            "    laptpo:\n      secure: v1:abc\n"
        ),
        setting="clientKeys.laptpo",
        says=("did you mean 'laptop'",),
    ),
    Mistake(
        "a bearer route no client may use",
        lambda v: (
            v["routes"].append(
                {
                    "path": "/mcp/*",
                    "upstream": "dashboard",
                    "auth": "bearer",
                    "stripPrefix": True,
                    "allowPaths": ["/sse"],
                }
            ),
            v.update(clients={"laptop": {"routes": ["/llm/*"]}}),
        ),
        setting="routes[5]",
        says=("no client",),
    ),
    Mistake(
        "tailnet identity in host-bind mode",
        add_route(path="/tsllm/*", upstream="model-gateway", stripPrefix=True, auth="tailnet"),
        setting="routes[5].auth",
        says=(TAILNET_NODE,),
        unsafe=True,
        modes=("dev",),
    ),
    Mistake(
        "tailnet identity without a pinned edge subnet",
        lambda v: (
            add_route(path="/tsllm/*", upstream="model-gateway", stripPrefix=True, auth="tailnet")(v),
            v["networks"]["proxy-net"].pop("subnet"),
        ),
        setting="networks.proxy-net.subnet",
        unsafe=True,
        modes=("dev-node",),
    ),
    *(
        Mistake(
            f"a login server that is not a control server URL ({why})",
            setting("node.loginServer", value),
            setting="node.loginServer",
            modes=("dev-node",),
        )
        for why, value in (
            ("another scheme", "ftp://headscale.example.com"),
            ("credentials", "https://admin:pw@headscale.example.com"),
            ("a path", "https://headscale.example.com/x"),
            ("a space", "https://headscale.example.com --accept-routes"),
            ("no host", "https://:8080"),
        )
    ),
    Mistake(
        "a capability of Tailscale's own",
        add_route(path="/tsllm/*", upstream="model-gateway", auth="tailnet", capability="tailscale.com/cap/x"),
        setting="routes[5].capability",
        modes=("dev-node",),
    ),
    Mistake(
        "local check on every interface",
        flags=("--listen", "0.0.0.0:8080"),
        says=("--listen", "every interface"),
        unsafe=True,
    ),
    Mistake(
        "upstream override for an unknown service",
        flags=("--upstream", "grafana=127.0.0.1:3000"),
        setting="--upstream grafana",
    ),
    # Per-caller limits.
    Mistake(
        "a request limit of zero",
        setting("limits.clients.requestsPerMinute", 0),
        setting="limits.clients.requestsPerMinute",
    ),
    Mistake(
        "a negative concurrency limit on a client",
        lambda v: v.update(clients={"laptop": {"limits": {"concurrent": -1}}}),
        setting="clients.laptop.limits.concurrent",
    ),
    Mistake(
        "a misspelt limit",
        setting("limits.tailnet.tokenPerMinute", 5),
        setting="limits.tailnet.tokenPerMinute",
        says=("did you mean 'tokensPerMinute'",),
    ),
    Mistake(
        "a limit that is not a number",
        setting("limits.clients.tokensPerMinute", "lots"),
        setting="limits.clients.tokensPerMinute",
    ),
    Mistake(
        "a limit of yes (YAML's true)",
        setting("limits.tailnet.concurrent", True),
        setting="limits.tailnet.concurrent",
    ),
    Mistake(
        "limits counted in two workers",
        lambda v: (setting("limits.clients.requestsPerMinute", 5)(v), setting("gateway.workers", 2)(v)),
        setting="gateway.workers",
        says=("1 worker",),
    ),
    Mistake(
        "a replica's port past the last port",
        setting("gateway.hostBind", "127.0.0.1:65535"),
        setting="gateway.hostBind",
    ),
    Mistake(
        "a replica moved without the gateway",
        flags=("--upstream", "model-gateway-2=127.0.0.1:3000"),
        setting="--upstream model-gateway-2",
    ),
    Mistake(
        "edge metrics on every interface",
        flags=("--listen", "127.0.0.1:8080", "--metrics-listen", "0.0.0.0:9180"),
        says=("--metrics-listen",),
        unsafe=True,
    ),
    Mistake(
        "a machine address outside the tailnet ranges",
        remote_backend("192.168.1.20"),
        setting="machines.gpu-2.address",
        says=("100.64.0.0/10",),
    ),
    Mistake(
        "a machine given by its MagicDNS name only",
        remote_backend("gpu-2.tail0a1b2c.ts.net"),
        setting="machines.gpu-2.address",
        says=("tailscale ip -4", "MagicDNS"),
    ),
    Mistake(
        "a remote backend on a machine the policy cannot name",
        remote_backend(machine="gpu-3"),
        setting="services.llamacpp-gpu2.machine",
        says=("not a declared machine", "cannot name it"),
    ),
    Mistake(
        "a remote backend on a port the policy would not grant",
        remote_backend(port=22),
        setting="services.llamacpp-gpu2.port",
        says=("1024-65535",),
    ),
    Mistake(
        "a remote service on Docker networks too",
        remote_backend(networks=["backend"]),
        setting="services.llamacpp-gpu2",
        says=("no 'networks'",),
    ),
    Mistake(
        "a route to a service on another machine",
        lambda v: (remote_backend()(v), add_route(path="/gpu2/*", upstream="llamacpp-gpu2", auth="sso")(v)),
        setting="routes[5].upstream",
        says=("another tailnet machine",),
    ),
    Mistake(
        "a machine at the gateway host's own address",
        remote_backend("100.101.102.103"),
        setting="machines.gpu-2.address",
        says=("gateway host",),
        modes=("dev",),
    ),
    Mistake(
        "two machines at one address",
        lambda v: (remote_backend()(v), setting("machines.gpu-3", {"address": "100.101.102.104"})(v)),
        setting="machines.gpu-3.address",
        says=("'gpu-2'",),
    ),
    Mistake(
        "a machine named as the policy names the gateway host",
        lambda v: (
            remote_backend()(v),
            setting("machines", {"llm-gateway-host": {"address": "100.101.102.104"}})(v),
            setting("services.llamacpp-gpu2.machine", "llm-gateway-host")(v),
        ),
        setting="machines.llm-gateway-host",
        modes=("dev",),
    ),
    Mistake(
        "LiteLLM not on the edge's network with a remote backend",
        lambda v: (remote_backend()(v), setting("services.model-gateway.networks", ["frontend", "backend"])(v)),
        setting="services.model-gateway.networks",
        says=("edge's network",),
    ),
    Mistake(
        "a remote backend checked locally without a forwarder address",
        remote_backend(),
        flags=("--listen", "127.0.0.1:8080"),
        setting="--forward-listen",
    ),
    Mistake(
        "a node's proxy to other machines left out of a local check",
        remote_backend(),
        flags=("--listen", "127.0.0.1:8080", "--forward-listen", "127.0.0.1:9200"),
        setting="--egress-proxy",
        modes=("dev-node",),
    ),
    Mistake(
        "the node's proxy on another machine in a local check",
        remote_backend(),
        flags=("--listen", "127.0.0.1:8080", "--forward-listen", "127.0.0.1:9200", "--egress-proxy", "10.0.0.5:1055"),
        says=("--egress-proxy",),
        unsafe=True,
        modes=("dev-node",),
    ),
    Mistake(
        "a forwarder to another machine on every interface",
        remote_backend(),
        flags=("--listen", "127.0.0.1:8080", "--forward-listen", "0.0.0.0:9200"),
        says=("--forward-listen",),
        unsafe=True,
    ),
    Mistake(
        "a browser route by tailnet identity in host-bind mode",
        route("/*", auth="tailnet"),
        setting="routes[4].auth",
        says=("tailnet-node",),
        modes=("dev",),
    ),
    Mistake(
        "an identity header that is not a header name",
        route("/*", auth="tailnet", identityHeaders={"email": "X Forwarded Email"}),
        setting="routes[4].identityHeaders.email",
        modes=("dev-node",),
    ),
    Mistake(
        "an identity header browsers rely on",
        route("/*", auth="tailnet", identityHeaders={"email": "Cookie"}),
        setting="routes[4].identityHeaders",
        says=("'Cookie'",),
        modes=("dev-node",),
    ),
    Mistake(
        "one header for two parts of the identity",
        route("/*", auth="tailnet", identityHeaders={"email": "X-Who", "name": "x-who"}),
        setting="routes[4].identityHeaders",
        says=("two parts",),
        modes=("dev-node",),
    ),
    Mistake(
        "an identity part the edge does not know",
        route("/*", auth="tailnet", identityHeaders={"groups": "X-Groups"}),
        setting="routes[4].identityHeaders",
        modes=("dev-node",),
    ),
    Mistake(
        "identity headers on an API route",
        route("/llm/*", auth="tailnet", identityHeaders={"email": "X-Who"}),
        setting="routes[2].identityHeaders",
        says=("web app",),
        modes=("dev-node",),
    ),
    Mistake(
        "identity headers on an SSO route",
        route("/*", identityHeaders={"email": "X-Who"}),
        setting="routes[4]",
        says=("identityHeaders",),
        modes=("dev-node",),
    ),
    Mistake(
        "two tailnet routes whose default capabilities meet",
        lambda values: [
            route("/dash/*", path="/team/admin/*", auth="tailnet")(values),
            values["routes"].append(
                {"path": "/team-admin/*", "upstream": "dashboard", "stripPrefix": True, "auth": "tailnet"}
            ),
        ],
        setting="routes[5].capability",
        says=("/team/admin/*",),
        modes=("dev-node",),
    ),
    Mistake(
        "cross-site requests allowed on an API route",
        route("/llm/*", auth="tailnet", allowCrossSite="our own tools post here"),
        setting="routes[2].allowCrossSite",
        says=("web app",),
        modes=("dev-node",),
    ),
    Mistake(
        "cross-site requests allowed on an SSO route",
        route("/*", allowCrossSite="our own tools post here"),
        setting="routes[4]",
        says=("allowCrossSite",),
        modes=("dev-node",),
    ),
    Mistake(
        "cross-site requests allowed with no reason",
        route("/*", auth="tailnet", allowCrossSite=""),
        setting="routes[4].allowCrossSite",
        modes=("dev-node",),
    ),
    Mistake(
        "unwritable output directory",
        flags=("--out", "/proc/tailnet-llm-gateway"),
        setting="--out /proc/tailnet-llm-gateway",
        says=("cannot write",),
    ),
]


def _stack_text(mistake: Mistake, stack: str) -> str:
    if mistake.text is not None:
        return mistake.text((ROOT / f"Pulumi.{stack}.yaml").read_text())
    values = stack_values(stack)
    if mistake.edit is not None:
        mistake.edit(values)
    return yaml.safe_dump({"config": {f"tailnet-llm-gateway:{k}": v for k, v in values.items()}}, sort_keys=False)


def _render(project: Path, stack: str, out: Path, flags: tuple[str, ...], capsys) -> tuple[int, list[str]]:
    argv = ["render", "--stack", stack, "--project-dir", str(project)]
    argv += list(flags) if "--out" in flags else ["--out", str(out), *flags]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    return code, capsys.readouterr().err.strip().splitlines()


def test_there_are_at_least_forty_mistakes():
    assert len(MISTAKES) >= 40 and len({m.name for m in MISTAKES}) == len(MISTAKES), (
        "the table is short of forty distinct mistakes"
    )


CASES = [(m, stack) for m in MISTAKES for stack in m.modes]


@pytest.mark.parametrize(("mistake", "stack"), CASES, ids=[f"{m.name}-{stack}" for m, stack in CASES])
def test_mistake_is_refused_with_one_line_naming_the_setting(mistake, stack, tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project)
    shutil.copytree(ROOT / "tailnet", project / "tailnet")
    (project / f"Pulumi.{stack}.yaml").write_text(_stack_text(mistake, stack))
    out = tmp_path / "out"
    code, lines = _render(project, stack, out, mistake.flags, capsys)
    assert code == 2, f"{mistake.name} was accepted (exit {code}): {lines}"
    assert len(lines) == 1, f"{mistake.name}: not one line: {lines}"
    if mistake.setting:
        assert f"'{mistake.setting}'" in lines[0] or mistake.setting in lines[0], (
            f"the setting is not named: {lines[0]}"
        )
    for words in mistake.says:
        assert words in lines[0], f"{mistake.name}: the line does not say {words!r}: {lines[0]}"
    if mistake.unsafe:
        assert not out.exists(), f"{mistake.name}: files were rendered for an unsafe stack"


def test_a_clean_dev_stack_file_still_renders(tmp_path, capsys):
    """The table's harness itself: the unedited stack renders, so every refusal above is the edit's."""
    code, lines = _render(ROOT, "dev", tmp_path / "out", (), capsys)
    assert code == 0 and (tmp_path / "out" / "Caddyfile").exists(), lines


def test_write_stack_round_trips(tmp_path):
    path = write_stack(tmp_path, "x", stack_values("dev"))
    assert (
        yaml.safe_load(path.read_text())["config"]["tailnet-llm-gateway:tailnetHost"] == "gpu-box.tail0a1b2c.ts.net"
    ), "the table's stack files would not be what the settings say"
