"""What a tailnet policy grants, answered by code this project did not write (testnet-grants: headscale's
policy engine compiles the policy, tailscaled's packet filter decides), for the tests that hold the
project's offline evaluator to it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Device:
    """A device of the world a policy is compiled for: a person's (login) or a tagged one (tags)."""

    name: str
    ipv4: str
    login: str = ""
    tags: tuple[str, ...] = ()

    def encoded(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "ipv4": self.ipv4}
        if self.tags:
            entry["tags"] = list(self.tags)
        else:
            entry["login"] = self.login
        return entry


@dataclass(frozen=True)
class Answer:
    accept: bool
    caps: dict[str, list[Any]] = field(default_factory=dict)


def ask(
    bin_dir: Path, policy: str, devices: list[Device], queries: list[tuple[str, str, int]]
) -> tuple[str, list[Answer]]:
    """Why the policy's own tests fail ("" when they pass), and for each (src, dst, port) of `queries` (device
    names) whether src may connect there and which application capabilities it has at dst."""
    request = {
        "policy": policy,
        "devices": [d.encoded() for d in devices],
        "queries": [{"src": s, "dst": d, "port": p} for s, d, p in queries],
    }
    result = subprocess.run(
        [str(bin_dir / "testnet-grants")], input=json.dumps(request), capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"headscale could not compile the policy: {result.stderr.strip()}")
    output = json.loads(result.stdout)
    return output["tests"], [Answer(a["accept"], a.get("caps") or {}) for a in output["answers"]]
