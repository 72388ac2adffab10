"""One tailscaled of the test tailnet: its CLI, its status, and (for another machine in a namespace) the
fakes it serves and taking it off the network."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.processes import Process

from .namespaces import ip

# What Tailscale's integration tests set on every tailscaled they start, so that none asks the internet.
QUIET = {
    "TS_ASSUME_NETWORK_UP_FOR_TEST": "1",
    "TS_DISABLE_PORTMAPPER": "1",
    "TS_NO_LOGS_NO_SUPPORT": "true",
}
# The certificate store accepts a pre-seeded certificate not signed by a public CA only when the ACME
# directory is not Let's Encrypt's (feature/acme/certstore.go); this one is never asked.
ACME_DIRECTORY = "https://acme.testnet.invalid/directory"


def device_env(control_url: str) -> dict[str, str]:
    """The environment a tailscaled of the test tailnet runs with."""
    return {
        **QUIET,
        "TS_NETCHECK_GENERATE_204_URL": f"{control_url}/generate_204",
        "TS_DEBUG_ACME_DIRECTORY_URL": ACME_DIRECTORY,
    }


@dataclass
class Device:
    """One tailscaled on this machine, joined as `hostname` (a person's device unless `tags`)."""

    hostname: str
    bin_dir: Path
    state_dir: Path
    socks5_port: int
    process: Process
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    # Another machine's namespace and the host's end of its veth (None: a device on this host).
    netns: str | None = None
    veth: str | None = None
    servers: dict[int, Process] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.state_dir / "tailscaled.sock"

    @property
    def socks5(self) -> str:
        return f"socks5://127.0.0.1:{self.socks5_port}"

    def cli(self, *argv: str, timeout: float = 30, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "tailscale"), f"--socket={self.socket}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )
        if result.returncode != 0:
            raise RuntimeError(f"tailscale {' '.join(argv[:2])} on {self.hostname} failed: {result.stderr.strip()}")
        return result.stdout

    def status(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--json"))

    @property
    def address(self) -> str:
        return self.status()["Self"]["TailscaleIPs"][0]

    def drop(self) -> None:
        """Take the machine off the network as a pulled cable would: it answers nothing, refuses nothing."""
        self._filter("-I", "INPUT", "1", "!", "-i", "lo", "-j", "DROP")

    def rejoin(self) -> None:
        self._filter("-D", "INPUT", "!", "-i", "lo", "-j", "DROP")

    def _filter(self, *rule: str) -> None:
        assert self.netns is not None, f"{self.hostname} runs on this host, not in a namespace of its own"
        subprocess.run(
            ["ip", "netns", "exec", self.netns, "iptables", *rule], check=True, capture_output=True, timeout=20
        )

    def served(self, port: int) -> list[str]:
        """The requests the fake on `port` served ("METHOD path"), asked inside the machine's namespace."""
        assert self.netns is not None, f"{self.hostname} has no fakes"
        code = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/_fake/requests').read().decode())"
        result = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", code], capture_output=True, text=True, timeout=20
        )
        return json.loads(result.stdout)

    def kill(self, port: int) -> None:
        """Kill the fake on `port` as a crash would (its connections refused from then on)."""
        self.servers[port].kill()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.process.stop()
        if self.netns is not None:
            ip("link", "del", str(self.veth), check=False)
            ip("netns", "del", self.netns, check=False)
