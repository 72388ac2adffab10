"""The edge's forwarders to services on other tailnet machines: the only way LiteLLM reaches them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policy.gateway_contract import EDGE_KEY_FILE, markers

from .proxy import load_key
from .writer import Writer

if TYPE_CHECKING:
    from ...topology import Topology
    from ...topology.remote import Forward

EDGE_KEY_VAR = markers.EDGE_KEY_VAR
# A machine that dropped off the tailnet answers nothing: the health check leaves it out after one
# unanswered check, so LiteLLM fails over within seconds, and a dial gives up after the dial timeout.
# (Through the node's SOCKS5 proxy, the node decides how long a dial waits.)
FORWARD_DIAL_TIMEOUT_S = 3
FORWARD_HEALTH_INTERVAL_S = 2
FORWARD_HEALTH_TIMEOUT_S = 2


def _health_path(topology: Topology, forward: Forward) -> str:
    """The first model path the service serves, + /models: every OpenAI-compatible server lists them."""
    paths = [b.api_path for m in topology.models for b in m.backends if b.service.name == forward.service.name]
    return (paths[0] if paths else "/v1") + "/models"


def forwarders(w: Writer, topology: Topology) -> None:
    for forward in topology.forwards:
        w.line()
        _for_litellm(w, topology, forward)
        w.line()
        _dialer(w, topology, forward)


def _for_litellm(w: Writer, topology: Topology, forward: Forward) -> None:
    service, machine = forward.service, forward.service.machine
    assert machine is not None
    w.line(f"# LiteLLM reaches {service.name} on {machine.name} (another tailnet machine) only through here,")
    w.line("# with the edge's own key: nothing else on this network can use it, and the key goes no further.")
    w.open(forward.address)
    if forward.host is not None:
        w.line(f"bind {forward.host}")
    w.open("route")
    load_key(w, topology, EDGE_KEY_VAR, EDGE_KEY_FILE)
    key = f"{{vars.{EDGE_KEY_VAR}}}"
    w.line(f"@not_gateway expression `{key} == '' || {{http.request.header.Authorization}} != 'Bearer ' + {key}`")
    w.line("respond @not_gateway 403")
    w.open(f"reverse_proxy {forward.dialer_address}")
    w.line("header_up -Authorization")
    w.line("# The machine is asked every few seconds: one that dropped off the tailnet (it answers nothing) is left")
    w.line("# out before a request meets it, LiteLLM gets an answer at once and retries on another backend, and")
    w.line("# the machine is used again once it answers.")
    w.line(f"health_uri {_health_path(topology, forward)}")
    w.line(f"health_interval {FORWARD_HEALTH_INTERVAL_S}s")
    w.line(f"health_timeout {FORWARD_HEALTH_TIMEOUT_S}s")
    w.close()
    w.close()
    w.close()


def _dialer(w: Writer, topology: Topology, forward: Forward) -> None:
    w.line(f"# The edge's dialer to {forward.service.name}: loopback inside the edge only.")
    # Any Host (the forwarder passes LiteLLM's on), bound to loopback.
    w.open(f"http://:{forward.dialer_port}")
    w.line(f"bind {forward.dialer_address.host}")
    w.open(f"reverse_proxy {forward.service.address}")
    w.open("transport http")
    w.line(f"dial_timeout {FORWARD_DIAL_TIMEOUT_S}s")
    w.line("# A new connection a request: a pooled one to a machine that dropped would take a request and never")
    w.line("# answer; a new one fails to connect, and LiteLLM retries on another backend.")
    w.line("keepalive off")
    if topology.egress is not None:
        w.line("# The node is in userspace networking: its SOCKS5 proxy dials into the tailnet as the node.")
        w.line(f"network_proxy url socks5://{topology.egress}")
    w.close()
    w.close()
    w.close()
