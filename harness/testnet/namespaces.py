"""Other machines of the test tailnet as network namespaces on this host: their addresses, the commands
that make them, and removing what an interrupted run left."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Another machine's own network: a namespace on a veth pair from the benchmarking range (198.18.0.0/15,
# never routed on the internet), a /30 each, its default route through this host, which it reaches the
# control server through.
MACHINE_NET = "198.18.0"
# Where a control server for namespaced devices listens: an address of this host's loopback interface in the
# same range, which every namespace reaches through its default route.
UPLINK = f"{MACHINE_NET}.1"
# Ahead of Tailscale's own routing rules (5210-5270): a tailnet address routed into a test namespace stays there
# even on a machine that runs Tailscale.
RULE_PRIORITY = 5200


def ip(*argv: str, check: bool = True) -> None:
    subprocess.run(["ip", *argv], check=check, capture_output=True, timeout=20)


def remove_stale_machines() -> None:
    """What an interrupted run left: its namespaces (their veths go with them), uplink, routes and rules."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20).stdout
    for line in listed.splitlines():
        if line.startswith("tlgtn-"):
            ip("netns", "del", line.split()[0], check=False)
    ip("addr", "del", f"{UPLINK}/32", "dev", "lo", check=False)
    rules = subprocess.run(["ip", "rule", "list"], capture_output=True, text=True, timeout=20).stdout
    for line in rules.splitlines():
        if line.startswith(f"{RULE_PRIORITY}:") and "to 100." in line:
            ip("rule", "del", "priority", str(RULE_PRIORITY), "to", line.split("to ")[1].split()[0], check=False)


def can_make_namespaces() -> str | None:
    """Why a machine's network namespace cannot be made here (None: it can): it needs iproute2, iptables and
    root, and a host's kernel-mode tailscaled needs a TUN device."""
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing (a kernel-mode tailscaled needs it)"
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10)
    return None if result.returncode == 0 else "cannot list network namespaces (needs root)"
