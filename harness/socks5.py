"""A stand-in for the Tailscale node's SOCKS5 proxy (tailscaled --socks5-server), on loopback.

It speaks SOCKS5 as tailscaled does for the edge (no authentication, CONNECT to an IPv4 address or a
name) and dials only loopback addresses, where the live tests run the "other machines". It records each
destination asked for, so a test can show that the edge reached a machine through the node and not by
itself.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import socketserver
import struct
import threading
import time

_NO_AUTH, _CONNECT = 0x00, 0x01
_IPV4, _NAME = 0x01, 0x03
_OK, _NOT_ALLOWED, _UNREACHABLE, _REFUSED = 0x00, 0x02, 0x04, 0x05
# How long the stand-in's dial to a dropped machine waits before it says "host unreachable".
HOLD_S = 10


class _Relay(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(10)
        version, methods = client.recv(2)
        client.recv(methods)
        client.sendall(bytes([5, _NO_AUTH]))
        _, command, _, kind = client.recv(4)
        if kind == _IPV4:
            host = socket.inet_ntoa(client.recv(4))
        elif kind == _NAME:
            host = client.recv(client.recv(1)[0]).decode()
        else:
            return
        (port,) = struct.unpack("!H", client.recv(2))
        self.server.asked.append(f"{host}:{port}")  # type: ignore[attr-defined]
        if f"{host}:{port}" in self.server.dropped:  # type: ignore[attr-defined]
            # A machine that dropped off the tailnet: the node's dial gets no answer until it gives up
            # (HOLD_S here; tailscaled's own limit is its own), then the node reports it unreachable.
            time.sleep(HOLD_S)
            self._reply(client, _UNREACHABLE)
            return
        if command != _CONNECT or version != 5 or not _is_loopback(host):
            self._reply(client, _NOT_ALLOWED)
            return
        try:
            upstream = socket.create_connection((host, port), timeout=5)
        except OSError:
            self._reply(client, _REFUSED)
            return
        self._reply(client, _OK)
        client.settimeout(None)
        upstream.settimeout(None)
        _pipe(client, upstream)

    @staticmethod
    def _reply(client: socket.socket, status: int) -> None:
        client.sendall(bytes([5, status, 0, _IPV4, 0, 0, 0, 0, 0, 0]))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while True:
            readable, _, _ = select.select([a, b], [], [], 60)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (b if source is a else a).sendall(data)
    except OSError:
        return
    finally:
        a.close()
        b.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Socks5StandIn:
    """The stand-in on 127.0.0.1:port, served from a daemon thread until `stop()`; `asked` lists the
    destinations asked for (host:port)."""

    def __init__(self, port: int) -> None:
        self.server = _Server(("127.0.0.1", port), _Relay)
        self.server.asked = []  # type: ignore[attr-defined]
        # Destinations (host:port) that answer nothing, as a machine gone from the tailnet.
        self.server.dropped = set()  # type: ignore[attr-defined]
        self.port = port
        self.thread = threading.Thread(target=self.server.serve_forever, name="socks5", daemon=True)

    def drop(self, destination: str) -> None:
        self.server.dropped.add(destination)  # type: ignore[attr-defined]

    def rejoin(self, destination: str) -> None:
        self.server.dropped.discard(destination)  # type: ignore[attr-defined]

    @property
    def asked(self) -> list[str]:
        return self.server.asked  # type: ignore[attr-defined]

    def start(self) -> Socks5StandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
