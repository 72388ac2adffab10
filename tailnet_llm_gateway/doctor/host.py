"""What the Docker host must have: an engine, a kernel the edge's settings need, the tailnet address and the
certificate files (host-bind), and every port the stack publishes free or already the stack's."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import platform
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import docker

from ..topology import Topology
from ..topology.published import PublishedPort, published_ports
from .finding import FAIL, OK, WARN, Finding

# The edge hands queued connections to a reloaded config with tcp_migrate_req, which Linux has since 5.14.
MIGRATE_KERNEL = (5, 14)


def docker_engine() -> tuple[Finding, Any]:
    """The engine `pulumi up`'s Docker provider will talk to (DOCKER_HOST, else the local socket), and a client."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=10)
        version = client.version()
    except docker.errors.DockerException as error:
        return Finding(FAIL, "docker engine", f"none answers at {where}: {str(error)[:200]}"), None
    return Finding(OK, "docker engine", f"Docker {version['Version']} (API {version['ApiVersion']}) at {where}"), client


def kernel(topology: Topology) -> Finding:
    release = platform.release()
    numbers = tuple(int(part) for part in release.split("-")[0].split(".")[:2] if part.isdigit())
    if not topology.edge.migrate_on_reload:
        return Finding(OK, "kernel", f"Linux {release} (edge.migrateConnectionsOnReload is off: any kernel)")
    if numbers >= MIGRATE_KERNEL:
        return Finding(OK, "kernel", f"Linux {release}, 5.14 or later (the edge's reloads migrate queued connections)")
    return Finding(
        FAIL, "kernel", f"Linux {release} has no net.ipv4.tcp_migrate_req: set edge.migrateConnectionsOnReload: false"
    )


def _host_addresses() -> set[str]:
    listed = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=20, check=True)
    return {a["local"] for link in json.loads(listed.stdout) for a in link.get("addr_info", [])}


def _nonlocal_bind_on(address: str) -> bool:
    family = "ipv6" if ipaddress.ip_address(address).version == 6 else "ipv4"
    return Path(f"/proc/sys/net/{family}/ip_nonlocal_bind").read_text().strip() == "1"


def address_on_host(address: str) -> Finding:
    """host-bind: Docker publishes the edge's port on the tailnet address, which tailscaled gives the host."""
    if address in _host_addresses():
        return Finding(OK, "tailnet address", f"{address} is on this host (tailnetIp)")
    if _nonlocal_bind_on(address):
        return Finding(
            WARN,
            "tailnet address",
            f"{address} (tailnetIp) is not on this host now; the edge answers once tailscaled is up",
        )
    return Finding(
        FAIL,
        "tailnet address",
        f"{address} (tailnetIp) is not an address of this host: is tailscaled up, and is it `tailscale ip` here?",
    )


def nonlocal_bind(address: str) -> Finding:
    family = "ipv6" if ipaddress.ip_address(address).version == 6 else "ipv4"
    if _nonlocal_bind_on(address):
        return Finding(
            OK, "ip_nonlocal_bind", f"net.{family}.ip_nonlocal_bind=1: the edge starts at boot before tailscaled"
        )
    return Finding(
        WARN,
        "ip_nonlocal_bind",
        f"net.{family}.ip_nonlocal_bind=0: after a reboot Docker starts the edge before tailscaled and it stays "
        f"down; set net.{family}.ip_nonlocal_bind=1 (docs/operations.md, Reboots)",
    )


def _readable_by(path: Path, uid: int, gid: int, bit: int) -> bool:
    """Whether a process of uid:gid (no other groups, no capabilities) has this permission on the path."""
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & (bit << 6))
    if info.st_gid == gid:
        return bool(info.st_mode & (bit << 3))
    return bool(info.st_mode & bit)


def certificate_files(topology: Topology) -> list[Finding]:
    """host-bind: Caddy reads the certificate and key from `tls.certDir`, mounted read-only, as its own uid."""
    site = topology.site
    if site.cert_dir is None or site.tls_files is None:
        return []
    resources = topology.edge.resources
    directory = Path(site.cert_dir)
    findings = []
    for setting, mounted in zip(("tls.certFile", "tls.keyFile"), site.tls_files, strict=True):
        path = directory / Path(mounted).name
        what = f"{setting} {path}"
        if not path.is_file():
            findings.append(Finding(FAIL, what, "missing: `tailscale cert` writes it (docs/deploy.md)"))
            continue
        # Docker mounts the directory itself: its parents on the host do not matter inside the container.
        blocked = not _readable_by(directory, resources.uid, resources.gid, stat.S_IXOTH)
        if blocked or not _readable_by(path, resources.uid, resources.gid, stat.S_IROTH):
            where = directory if blocked else path
            findings.append(
                Finding(
                    FAIL,
                    what,
                    f"Caddy (uid {resources.uid}, edge.resources.user) cannot read it: {where} is "
                    f"{stat.filemode(where.stat().st_mode)} owned by {where.stat().st_uid}:{where.stat().st_gid}; "
                    f"`chown {resources.uid} {path}` (and keep it 0400 or 0600)",
                )
            )
            continue
        findings.append(Finding(OK, what, f"present, readable by Caddy's uid {resources.uid}"))
    return findings


def _publisher(client: Any, published: PublishedPort) -> str | None:
    """The running container that publishes this host address and port, if any."""
    for container in client.containers.list():
        for bindings in (container.attrs.get("HostConfig", {}).get("PortBindings") or {}).values():
            for binding in bindings or []:
                if (binding.get("HostIp"), binding.get("HostPort")) == (published.bind.host, str(published.bind.port)):
                    return str(container.name)
    return None


def _port_free(published: PublishedPort) -> int | None:
    """None when the address and port can be bound now, else the errno."""
    family = socket.AF_INET6 if ":" in published.bind.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((published.bind.host, published.bind.port))
        except OSError as error:
            return error.errno
    return None


def published_ports_free(topology: Topology, client: Any) -> list[Finding]:
    findings = []
    for published in published_ports(topology):
        what = f"host port {published.bind}"
        error = _port_free(published)
        if error is None:
            findings.append(Finding(OK, what, f"free, for {published.container}"))
            continue
        publisher = _publisher(client, published) if client is not None else None
        if publisher == published.container:
            findings.append(Finding(OK, what, f"already this stack's ({publisher})"))
        elif publisher is not None:
            findings.append(
                Finding(FAIL, what, f"published by container {publisher}: pick another {published.setting}")
            )
        elif error == errno.EADDRINUSE:
            findings.append(
                Finding(FAIL, what, f"taken by another process (`ss -ltnp` names it): pick another {published.setting}")
            )
        elif error == errno.EADDRNOTAVAIL:
            findings.append(Finding(WARN, what, "cannot be tested: the address is not on this host (above)"))
        else:
            findings.append(Finding(WARN, what, f"cannot be tested ({os.strerror(error)})"))
    return findings
