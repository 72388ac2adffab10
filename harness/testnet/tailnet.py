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
from pathlib import Path
from typing import Any

from harness.ports import free_port
from harness.processes import Process
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.tailnet.policy import checked_policy
from tailnet_llm_gateway.topology import build_topology

from .device import Device, device_env
from .namespaces import MACHINE_NET, RULE_PRIORITY, UPLINK, ip

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 60


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
            ip("addr", "add", f"{UPLINK}/32", "dev", "lo")
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
        ip("route", "add", f"{address}/32", "via", router.extra["gateway"])
        ip("rule", "add", "to", f"{address}/32", "lookup", "main", "priority", str(RULE_PRIORITY))
        self.routes.append(address)

    def _namespace(self) -> tuple[str, str, str]:
        """A new namespace on a veth /30 of MACHINE_NET (after the control's uplink), its default route via this
        host; its name, the host end's name, and its own address."""
        index = 1 + sum(d.netns is not None for d in self.devices.values())
        netns, veth = f"tlgtn-{os.getpid()}-{index}", f"tlgtn{os.getpid() % 10000}v{index}"
        host_side, inner = f"{MACHINE_NET}.{4 * index + 1}", f"{MACHINE_NET}.{4 * index + 2}"
        ip("netns", "add", netns)
        ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        ip("link", "set", f"{veth}p", "netns", netns)
        ip("addr", "add", f"{host_side}/30", "dev", veth)
        ip("link", "set", veth, "up")
        ip("-n", netns, "addr", "add", f"{inner}/30", "dev", f"{veth}p")
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "link", "set", f"{veth}p", "up")
        ip("-n", netns, "route", "add", "default", "via", host_side)
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
            ip("rule", "del", "to", f"{address}/32", "lookup", "main", "priority", str(RULE_PRIORITY), check=False)
            ip("route", "del", f"{address}/32", check=False)
        for device in self.devices.values():
            device.stop()
        self.control.stop()
        if self.uplink:
            ip("addr", "del", f"{UPLINK}/32", "dev", "lo", check=False)


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
