"""A stand-in tailnet for the engine tests: other machines as network namespaces, reached as a host-bind
host reaches tailnet machines (its own routing, from its containers through Docker's NAT).

Each machine is a network namespace with a tailnet address (100.64.0.0/10, on a veth pair the test
creates; a routing rule ahead of Tailscale's keeps the traffic on that veth even on a machine that runs
Tailscale). It runs the fake llama.cpp on its model port and on other ports (ssh, http, another service),
as a real machine would. Its packet filter is the rendered tailnet policy: Tailscale enforces a policy on
the receiving machine, so each machine accepts from the gateway's address only the ports the merged
policy grants the gateway's device (decided by the project's offline policy evaluator), and drops the
rest unanswered, as a tailnet machine does. `drop()` takes a machine off the tailnet (it answers nothing,
refuses nothing), `rejoin()` brings it back; `Machine.kill()` kills one of its servers (connections refused),
`restart()` starts it again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from components.settings import Settings
from components.tailnet.check import YES, policy_allows
from components.tailnet.merge import parse_hujson
from components.tailnet.policy import checked_policy
from components.topology import build_topology
from harness.processes import Process

ROOT = Path(__file__).resolve().parents[2]
# The host's side of every veth: the address the gateway's traffic comes from (Docker's NAT puts it
# there), standing for the gateway host's own tailnet address.
GATEWAY_SIDE = "100.88.0.1"
# The stand-in machines' range: looked up ahead of Tailscale's own rules (5210-5270), and unreachable
# but for the machines' own veths, so nothing addressed to it leaves this host or goes to a real tailscale0.
RANGE = "100.88.0.0/24"
RULE_PRIORITY = 5200
# Ports every stand-in machine listens on besides its model ports: ssh, http, and another service.
OTHER_PORTS = (22, 80, 8081)


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=20)


@dataclass
class Machine:
    alias: str
    address: str
    ports: tuple[int, ...]
    netns: str
    veth: str
    processes: dict[int, Process] = field(default_factory=dict)
    # Ports the rendered policy lets the gateway reach here: the packet filter accepts only these.
    granted: tuple[int, ...] = ()

    @property
    def listening(self) -> tuple[int, ...]:
        return tuple(sorted({*self.ports, *OTHER_PORTS}))

    def kill(self, port: int) -> None:
        """Kill the fake on `port` as a crash would (its connections refused from then on)."""
        self.processes[port].kill()

    def served(self, port: int) -> list[str]:
        """The requests the fake on `port` has served (asked from the host, which the filter lets in)."""
        response = httpx.get(f"http://{self.address}:{port}/_fake/requests", timeout=5)
        return response.json()


class StandInTailnet:
    def __init__(self, run_id: str, log_dir: Path) -> None:
        self.run_id, self.log_dir = run_id, log_dir
        self.machines: dict[str, Machine] = {}
        self.fake_args: tuple[str, ...] = ()
        _remove_stale()
        _ip("rule", "add", "to", RANGE, "lookup", "main", "priority", str(RULE_PRIORITY))
        _ip("route", "add", "unreachable", RANGE)

    def add(self, alias: str, address: str, ports: tuple[int, ...], fake_args: tuple[str, ...] = ()) -> Machine:
        """A machine at `address` with fakes on `ports` and the other ports (`fake_args` for each); open
        until `enforce` installs its filter."""
        index = len(self.machines)
        machine = Machine(alias, address, ports, f"tlg-{self.run_id}-{index}", f"tlg{self.run_id[:8]}{index}")
        self.machines[alias] = machine
        peer = f"{machine.veth}p"
        _ip("netns", "add", machine.netns)
        _ip("link", "add", machine.veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", machine.netns)
        _ip("addr", "add", f"{GATEWAY_SIDE}/32", "dev", machine.veth)
        _ip("link", "set", machine.veth, "up")
        _ip("route", "add", f"{address}/32", "dev", machine.veth)
        _ip("-n", machine.netns, "addr", "add", f"{address}/32", "dev", peer)
        _ip("-n", machine.netns, "link", "set", "lo", "up")
        _ip("-n", machine.netns, "link", "set", peer, "up")
        _ip("-n", machine.netns, "route", "add", f"{GATEWAY_SIDE}/32", "dev", peer)
        self.fake_args = fake_args
        for port in machine.listening:
            self._start(machine, port)
        for port in machine.listening:
            self._wait(machine, port)
        return machine

    def _start(self, machine: Machine, port: int) -> None:
        argv = ["ip", "netns", "exec", machine.netns, sys.executable, "-m", "harness.fakes"]
        argv += ["--host", machine.address, "--port", str(port), "--name", f"{machine.alias}-{port}", *self.fake_args]
        name = f"{machine.alias}-{port}-{len(machine.processes)}"
        old = machine.processes.get(port)
        if old is not None:
            old.stop()
        machine.processes[port] = Process(name, argv, self.log_dir, cwd=ROOT)

    def _wait(self, machine: Machine, port: int) -> None:
        deadline = time.monotonic() + 20
        while not self._answers(machine, port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the fake on {machine.alias}:{port} did not answer within 20 s")
            time.sleep(0.1)

    def restart(self, machine: Machine, port: int) -> None:
        """Start the fake on `port` again (after `kill`), and wait until it answers."""
        self._start(machine, port)
        self._wait(machine, port)

    @staticmethod
    def _answers(machine: Machine, port: int) -> bool:
        try:
            return httpx.get(f"http://{machine.address}:{port}/v1/models", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def enforce_plan(self, values: dict[str, Any], project_dir: Path) -> None:
        """`enforce` the merged policy that the settings `values` render, for the device it names the gateway."""
        topology = build_topology(Settings.from_mapping(values))
        policy, _ = checked_policy(topology.tailnet, project_dir)
        self.enforce(parse_hujson(policy, "the merged policy"), topology.tailnet.target)

    def enforce(self, policy: dict[str, Any], gateway: str) -> None:
        """Install each machine's packet filter from the merged policy: `gateway` (what the policy names the
        gateway's device) reaches a port only if the policy grants it; anything else is dropped."""
        for machine in self.machines.values():
            machine.granted = tuple(
                p for p in machine.listening if policy_allows(policy, gateway, f"{machine.alias}:{p}") == YES
            )
            rules = [["-F", "INPUT"], ["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"]]
            rules += [["-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]]
            rules += [
                ["-A", "INPUT", "-s", GATEWAY_SIDE, "-p", "tcp", "--dport", str(p), "-j", "ACCEPT"]
                for p in machine.granted
            ]
            rules += [["-A", "INPUT", "-j", "DROP"]]
            for rule in rules:
                self._filter(machine.alias, *rule)

    def _filter(self, alias: str, *rule: str) -> None:
        argv = ["ip", "netns", "exec", self.machines[alias].netns, "iptables", *rule]
        subprocess.run(argv, check=True, capture_output=True, timeout=20)

    def drop(self, alias: str) -> None:
        self._filter(alias, "-I", "INPUT", "1", "-j", "DROP")

    def rejoin(self, alias: str) -> None:
        self._filter(alias, "-D", "INPUT", "1")

    def remove(self) -> None:
        for machine in self.machines.values():
            for process in machine.processes.values():
                process.stop()
            _quiet("link", "del", machine.veth)
            _quiet("netns", "del", machine.netns)
        _quiet("route", "del", "unreachable", RANGE)
        _quiet("rule", "del", "to", RANGE, "lookup", "main", "priority", str(RULE_PRIORITY))


def _quiet(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=20)


def _remove_stale() -> None:
    """What an interrupted run left: its namespaces (their veths go with them), routes and rules."""
    for line in _quiet("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("tlg-"):
            _quiet("netns", "del", name)
    _quiet("route", "del", "unreachable", RANGE)
    for _ in range(20):
        if _quiet("rule", "del", "to", RANGE, "lookup", "main", "priority", str(RULE_PRIORITY)).returncode != 0:
            break


def can_stand_in() -> str | None:
    """Why network namespaces for tailnet machines cannot be made here (None: they can): they need iproute2,
    iptables and root, and a host's kernel-mode tailscaled needs a TUN device."""
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing (a kernel-mode tailscaled needs it)"
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10)
    return None if result.returncode == 0 else "cannot list network namespaces (needs root)"
