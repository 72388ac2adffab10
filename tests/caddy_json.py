"""A rendered Caddyfile as Caddy itself reads it: `caddy adapt` to JSON, then the site's handle blocks in
the order Caddy tries them, each as the flat list of steps it runs. Routing assertions read this, not
the Caddyfile's text."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.certs import self_signed_cert
from harness.processes import binary
from tailnet_llm_gateway.topology import CERT_MOUNT


@dataclass(frozen=True)
class Step:
    """One handler as Caddy runs it, with every matcher that must hold for it to run."""

    handler: dict[str, Any]
    matchers: tuple[dict[str, Any], ...]

    @property
    def kind(self) -> str:
        name = self.handler["handler"]
        if name == "reverse_proxy" and "X-Forwarded-Uri" in self.set_up():
            return "forward_auth"  # a reverse_proxy that asks the SSO service about the original request
        return str(name)

    def set_up(self) -> dict[str, list[str]]:
        """The headers a reverse_proxy sets on the request it sends (header_up)."""
        return dict(self.handler.get("headers", {}).get("request", {}).get("set", {}))

    @property
    def upstreams(self) -> list[str]:
        return [u["dial"] for u in self.handler.get("upstreams", [])]


@dataclass(frozen=True)
class Block:
    """A `handle`/`handle_path` block of the site: its path (None for the catch-all) and its steps."""

    path: str | None
    steps: tuple[Step, ...]

    def kinds(self) -> list[str]:
        return [step.kind for step in self.steps]

    def first(self, kind: str) -> int:
        return self.kinds().index(kind)

    def deleted_request_headers(self) -> set[str]:
        return {
            name
            for step in self.steps
            if step.kind == "headers"
            for name in step.handler.get("request", {}).get("delete", [])
        }


def adapt(caddyfile: str, work: Path) -> dict[str, Any]:
    """Caddy's JSON for the Caddyfile; the cert mount points at a throwaway cert so it adapts anywhere."""
    work.mkdir(parents=True, exist_ok=True)
    certs = work / "certs"
    certs.mkdir(exist_ok=True)
    self_signed_cert(certs, "gpu-box.tail0a1b2c.ts.net")
    path = work / "Caddyfile"
    path.write_text(caddyfile.replace(CERT_MOUNT + "/", f"{certs}/"))
    result = subprocess.run(
        [str(binary("caddy")), "adapt", "--config", str(path), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(work)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def _steps(handlers: list[dict[str, Any]], matchers: tuple[dict[str, Any], ...]) -> list[Step]:
    steps = []
    for handler in handlers:
        if handler["handler"] == "subroute":
            for route in handler.get("routes", []):
                steps += _steps(route.get("handle", []), matchers + tuple(route.get("match", [])))
        else:
            steps.append(Step(handler, matchers))
    return steps


def _site_routes(server: dict[str, Any]) -> list[dict[str, Any]]:
    """The handle blocks of a server's site: nested under its host matcher, or (a site without a host,
    as in tailnet-node mode) the server's own routes."""
    routes = server["routes"]
    if len(routes) == 1 and any("host" in m for m in routes[0].get("match", [])):
        return list(routes[0]["handle"][0].get("routes", []))
    return list(routes)


def site_blocks(config: dict[str, Any]) -> list[Block]:
    """The handle blocks of the site (not the container's health listener), in the order Caddy tries them."""
    servers = config["apps"]["http"]["servers"].values()
    site = max(servers, key=lambda server: len(_site_routes(server)))
    blocks = []
    for route in _site_routes(site):
        paths = [m["path"] for m in route.get("match", []) if "path" in m]
        blocks.append(Block(paths[0][0] if paths else None, tuple(_steps(route["handle"], ()))))
    return blocks
