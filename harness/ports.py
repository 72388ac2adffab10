"""Free loopback ports for the servers a test starts."""

from __future__ import annotations

import random
import socket


def _server_port_range() -> range:
    """Ports below the kernel's ephemeral range. A port picked from that range (bind to port 0) can be taken,
    before its server binds it, as the local port of any outgoing connection (a readiness poll, a proxy's
    dial); below it no connection takes one, so a port picked here stays free for its server."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as ports:
            low = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1025, low - 16384), low)


# Each port handed out once per test process: two picks never return the same port before either binds it.
_handed_out: set[int] = set()


def free_ports(count: int = 1, attempts: int = 200) -> int:
    """The first of `count` consecutive free loopback ports (the edge's forwarders take one each), below the
    ephemeral range and never handed out before."""
    ports = _server_port_range()
    for _ in range(attempts):
        first = random.randrange(ports.start, ports.stop - count)
        wanted = range(first, first + count)
        if _handed_out.intersection(wanted):
            continue
        socks = []
        try:
            for port in wanted:
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        _handed_out.update(wanted)
        return first
    raise RuntimeError(f"no {count} consecutive free loopback ports in {ports}")


def free_port() -> int:
    return free_ports(1)
