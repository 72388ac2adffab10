"""The test tailnet: its control server (testnet-control) and devices (real tailscaled, userspace networking).

Every device runs as Tailscale's integration tests run theirs: `tailscaled --tun=userspace-networking`
with its own state directory and socket, then `tailscale up --login-server=<control> --authkey=...`,
with the knobs those tests set so nothing is asked of the internet (no port mapping, no log upload,
the connectivity check against the control server). A device's SOCKS5 server listens on loopback: that
is how a test speaks as that device (its traffic enters the tailnet there, as a laptop's would).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.settings import Settings
from components.tailnet.policy import checked_policy
from components.topology import build_topology
from harness.processes import Process, free_port

ROOT = Path(__file__).resolve().parents[2]
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

# What Tailscale's integration tests set on every tailscaled they start, so that none asks the internet.
QUIET = {
    "TS_ASSUME_NETWORK_UP_FOR_TEST": "1",
    "TS_DISABLE_PORTMAPPER": "1",
    "TS_NO_LOGS_NO_SUPPORT": "true",
}
# The certificate store accepts a pre-seeded certificate not signed by a public CA only when the ACME
# directory is not Let's Encrypt's (feature/acme/certstore.go); this one is never asked.
ACME_DIRECTORY = "https://acme.testnet.invalid/directory"
UP_TIMEOUT_S = 60


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
            _ip("link", "del", str(self.veth), check=False)
            _ip("netns", "del", self.netns, check=False)


class Tailnet:
    """The control server and the devices a test starts; `close()` stops them all."""

    def __init__(
        self,
        bin_dir: Path,
        work_dir: Path,
        listen: str,
        domain: str,
        policy: str,
        auth_key: str,
        people: dict[str, dict[str, str]],
    ) -> None:
        self.bin_dir, self.work_dir, self.domain, self.auth_key = bin_dir, work_dir, domain, auth_key
        self.devices: dict[str, Device] = {}
        self.routes: list[str] = []
        # listen on UPLINK: an address every namespace of this tailnet reaches through this host.
        self.uplink = listen.startswith(f"{UPLINK}:")
        if self.uplink:
            _ip("addr", "add", f"{UPLINK}/32", "dev", "lo")
        work_dir.mkdir(parents=True, exist_ok=True)
        self.policy_path = work_dir / "policy.hujson"
        self.policy_path.write_text(policy)
        (work_dir / "people.json").write_text(json.dumps(people))
        ready = work_dir / "control-ready.json"
        ready.unlink(missing_ok=True)
        argv = [
            str(bin_dir / "testnet-control"),
            "-listen",
            listen,
            "-domain",
            domain,
            "-policy",
            str(self.policy_path),
            "-people",
            str(work_dir / "people.json"),
            "-ready",
            str(ready),
        ]
        self.control = Process("testnet-control", argv, work_dir, env={"TESTNET_AUTH_KEY": auth_key})
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.control.popen.poll() is not None or time.monotonic() > deadline:
                self.control.stop()
                raise RuntimeError(f"the test control server did not start:\n{self.control.log_tail()}")
            time.sleep(0.05)
        endpoints = json.loads(ready.read_text())
        self.control_url: str = endpoints["control"]

    def set_policy(self, policy: str) -> None:
        """Replace the tailnet policy; the control server sends every device its new filter within a second."""
        staged = self.policy_path.with_suffix(".new")
        staged.write_text(policy)
        os.replace(staged, self.policy_path)

    def join(self, hostname: str, tags: tuple[str, ...] = ()) -> Device:
        """A tailscaled on this machine, joined with the tailnet's auth key, its SOCKS5 server on loopback."""
        state = self._state(hostname)
        port = free_port()
        argv = [*self._tailscaled(state), f"--socks5-server=127.0.0.1:{port}"]
        process = Process(f"tailscaled-{hostname}", argv, self.work_dir, env=device_env(self.control_url))
        device = Device(hostname, self.bin_dir, state, port, process, tags)
        self.devices[hostname] = device
        return self._up(device)

    def join_machine(self, hostname: str, ports: tuple[int, ...], fake_args: tuple[str, ...] = ()) -> Device:
        """Another machine of the tailnet: a network namespace of its own, a fake llama.cpp on each of `ports`
        on its loopback (tailscaled in userspace networking hands a tailnet connection to the same port
        there), and its tailscaled, joined as a person's device."""
        netns, veth, _ = self._namespace()
        state = self._state(hostname)
        inside = ["ip", "netns", "exec", netns]
        process = Process(
            f"tailscaled-{hostname}",
            [*inside, *self._tailscaled(state)],
            self.work_dir,
            env=device_env(self.control_url),
        )
        device = Device(hostname, self.bin_dir, state, 0, process, netns=netns, veth=veth)
        self.devices[hostname] = device
        for port in ports:
            self.serve(device, port, fake_args)
        return self._up(device)

    def serve(self, device: Device, port: int, fake_args: tuple[str, ...] = ()) -> None:
        """(Re)start the fake llama.cpp on `port` inside the machine's namespace, and wait until it answers."""
        assert device.netns is not None
        old = device.servers.get(port)
        if old is not None:
            old.stop()
        argv = ["ip", "netns", "exec", device.netns, sys.executable, "-m", "harness.fakes", "--port", str(port)]
        argv += ["--name", device.hostname, *fake_args]
        device.servers[port] = Process(f"{device.hostname}-{port}-{len(device.servers)}", argv, self.work_dir, cwd=ROOT)
        deadline = time.monotonic() + 20
        while True:
            try:
                device.served(port)
                return
            except (ValueError, subprocess.SubprocessError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the fake on {device.hostname}:{port} did not answer within 20 s") from None
                time.sleep(0.2)

    def join_router(self, hostname: str) -> Device:
        """This host's own tailscaled in kernel mode (a `tailscale0`, as host-bind mode needs), kept in a namespace
        of its own: this host's containers reach the tailnet through it (`route_through`), leaving with its
        tailnet address as they would leave with the host's. Joined as a person's device, DNS left alone."""
        netns, veth, inner = self._namespace()
        state = self._state(hostname)
        inside = ["ip", "netns", "exec", netns]
        forward = ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]
        subprocess.run([*inside, *forward], check=True, capture_output=True, timeout=20)
        argv = [*inside, *self._tailscaled(state, tun="tailscale0")]
        process = Process(f"tailscaled-{hostname}", argv, self.work_dir, env=device_env(self.control_url))
        device = Device(hostname, self.bin_dir, state, 0, process, netns=netns, veth=veth)
        device.extra["gateway"] = inner
        self.devices[hostname] = device
        self._up(device, "--accept-dns=false", "--netfilter-mode=off")
        # What a host's own NAT does for its containers: they leave with its tailnet address.
        nat = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "tailscale0", "-j", "MASQUERADE"]
        subprocess.run([*inside, *nat], check=True, capture_output=True, timeout=20)
        return device

    def route_through(self, router: Device, address: str) -> None:
        """Send this host's traffic for a tailnet `address` through `router`'s tailscale0."""
        _ip("route", "add", f"{address}/32", "via", router.extra["gateway"])
        _ip("rule", "add", "to", f"{address}/32", "lookup", "main", "priority", str(RULE_PRIORITY))
        self.routes.append(address)

    def _namespace(self) -> tuple[str, str, str]:
        """A new namespace on a veth /30 of MACHINE_NET (after the control's uplink), its default route via this
        host; its name, the host end's name, and its own address."""
        index = 1 + sum(d.netns is not None for d in self.devices.values())
        netns, veth = f"tlgtn-{os.getpid()}-{index}", f"tlgtn{os.getpid() % 10000}v{index}"
        host_side, inner = f"{MACHINE_NET}.{4 * index + 1}", f"{MACHINE_NET}.{4 * index + 2}"
        _ip("netns", "add", netns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _ip("link", "set", f"{veth}p", "netns", netns)
        _ip("addr", "add", f"{host_side}/30", "dev", veth)
        _ip("link", "set", veth, "up")
        _ip("-n", netns, "addr", "add", f"{inner}/30", "dev", f"{veth}p")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "link", "set", f"{veth}p", "up")
        _ip("-n", netns, "route", "add", "default", "via", host_side)
        return netns, veth, inner

    def _state(self, hostname: str) -> Path:
        state = self.work_dir / hostname
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        return state

    def _tailscaled(self, state: Path, tun: str = "userspace-networking") -> list[str]:
        return [
            str(self.bin_dir / "tailscaled"),
            f"--tun={tun}",
            f"--statedir={state}",
            f"--socket={state / 'tailscaled.sock'}",
            "--port=0",
        ]

    def _up(self, device: Device, *flags: str) -> Device:
        hostname, process, tags = device.hostname, device.process, device.tags
        deadline = time.monotonic() + 20
        while not device.socket.exists():
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tailscaled for {hostname} did not start:\n{process.log_tail()}")
            time.sleep(0.05)
        up = [
            "up",
            f"--login-server={self.control_url}",
            f"--hostname={hostname}",
            f"--timeout={UP_TIMEOUT_S}s",
            "--auth-key=file:" + str(self._key_file()),
        ]
        if tags:
            up.append(f"--advertise-tags={','.join(tags)}")
        up += flags
        device.cli(*up, timeout=UP_TIMEOUT_S + 10)
        return device

    def _key_file(self) -> Path:
        # The key goes to `tailscale up` in a file, never on a command line.
        path = self.work_dir / "auth-key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(self.auth_key)
        return path

    def close(self) -> None:
        for address in self.routes:
            _ip("rule", "del", "to", f"{address}/32", "lookup", "main", "priority", str(RULE_PRIORITY), check=False)
            _ip("route", "del", f"{address}/32", check=False)
        for device in self.devices.values():
            device.stop()
        self.control.stop()
        if self.uplink:
            _ip("addr", "del", f"{UPLINK}/32", "dev", "lo", check=False)


def policy_for(values: dict[str, Any], project_dir: Path = ROOT) -> str:
    """The merged, checked tailnet policy the settings `values` render (what `pulumi up` would apply)."""
    return checked_policy(build_topology(Settings.from_mapping(values)).tailnet, project_dir)[0]


def join_host_bind(
    tailnet: Tailnet,
    host_address: str,
    machines: dict[str, tuple[str, tuple[int, ...]]],
    fake_args: tuple[str, ...] = (),
) -> Device:
    """A host-bind host on `tailnet`: its kernel-mode tailscaled first (so it gets `host_address`), then each
    machine (alias -> (the address it must get, the ports its fakes serve)) in order, routed through the host."""
    host = tailnet.join_router("gpu-box")
    if host.address != host_address:
        raise RuntimeError(f"the host joined as {host.address}, not {host_address}")
    for alias, (address, ports) in machines.items():
        machine = tailnet.join_machine(alias, ports, fake_args)
        if machine.address != address:
            raise RuntimeError(f"{alias} joined as {machine.address}, not {address}")
        tailnet.route_through(host, address)
    return host


def _ip(*argv: str, check: bool = True) -> None:
    subprocess.run(["ip", *argv], check=check, capture_output=True, timeout=20)


def remove_stale_machines() -> None:
    """What an interrupted run left: its namespaces (their veths go with them), uplink, routes and rules."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20).stdout
    for line in listed.splitlines():
        if line.startswith("tlgtn-"):
            _ip("netns", "del", line.split()[0], check=False)
    _ip("addr", "del", f"{UPLINK}/32", "dev", "lo", check=False)
    rules = subprocess.run(["ip", "rule", "list"], capture_output=True, text=True, timeout=20).stdout
    for line in rules.splitlines():
        if line.startswith(f"{RULE_PRIORITY}:") and "to 100." in line:
            _ip("rule", "del", "priority", str(RULE_PRIORITY), "to", line.split("to ")[1].split()[0], check=False)


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
