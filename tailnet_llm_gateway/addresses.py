"""Parsing and classifying the addresses that settings and CLI flags name.

The gateway must never listen on a public or LAN interface, so every bind is classified here once:
loopback, a Tailscale address, or unsafe.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from policy.gateway_contract import TAILSCALE_RANGES

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


class HostPort(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        # IPv6 literals need brackets wherever a port follows.
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(text: str) -> HostPort:
    """Parse `host:port` or `[v6]:port`; raise ValueError saying what is wrong."""
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", text)
    if not match:
        raise ValueError(f"{text!r} is not HOST:PORT")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} in {text!r} is out of range 1-65535")
    return HostPort(host, port)


def is_unspecified(host: str) -> bool:
    """True for 0.0.0.0, :: and the empty host: binds that mean every interface."""
    if host in ("", "*"):
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_tailscale_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in TAILSCALE_RANGES)


def require_loopback_bind(text: str) -> HostPort:
    """Parse a host bind that must stay on this machine's loopback interface."""
    bind = parse_host_port(text)
    if is_unspecified(bind.host):
        raise ValueError(f"{text} binds every interface; use 127.0.0.1 so nothing listens on the LAN")
    if not is_loopback(bind.host):
        raise ValueError(f"{text} is not a loopback address; use 127.0.0.1")
    return bind


def require_tailscale_ip(text: str) -> str:
    if is_unspecified(text):
        raise ValueError(f"{text!r} binds every interface; use the host's Tailscale IP")
    if not is_tailscale_ip(text):
        raise ValueError(f"{text!r} is not a Tailscale address (100.64.0.0/10 or fd7a:115c:a1e0::/48)")
    return str(ipaddress.ip_address(text))


def require_hostname(text: str) -> str:
    # DNS names compare case-insensitively, and a trailing dot names the same host.
    name = text.lower().rstrip(".")
    if not _HOSTNAME.fullmatch(name):
        raise ValueError(f"{text!r} is not a DNS host name")
    return name
