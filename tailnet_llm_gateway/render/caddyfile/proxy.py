"""reverse_proxy blocks: the upstream's own Host, headers the edge vouches for, LiteLLM's replicas."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policy.gateway_contract import caddyfile as shapes

from .writer import json_error

if TYPE_CHECKING:
    from ...topology import Topology
    from ...topology.services import Service
    from .writer import Writer


def proxy(
    w: Writer,
    topology: Topology,
    upstream: Service,
    set_up: dict[str, str] | None = None,
    rewrite: str | None = None,
    caller: str | None = None,
) -> None:
    """A reverse_proxy that gives the upstream its own name as Host, not the client's.

    `set_up` are headers the edge vouches for (a value, or "" to remove): set on the proxied request
    after the proxy dropped hop-by-hop headers, so no `Connection` header a client sends removes them.
    LiteLLM is asked across its replicas, only those that answer their health check; when limits are set,
    each `caller` (a placeholder naming who is calling) always at the same one.
    """
    gateway = topology.gateway
    to_gateway = upstream.name == gateway.service.name
    sticky = caller is not None and to_gateway and rewrite is None and sticky_callers(topology)
    if sticky and caller is not None:
        _caller_to_one_replica(w, caller)
    if to_gateway and rewrite is None:
        _whole_body_first(w)
    w.open(shapes.proxy_head(gateway.addresses if to_gateway else (upstream.address,)))
    if to_gateway and rewrite is None:
        _gateway_balancing(w, sticky)
    elif to_gateway:
        w.line("# Any replica that answers; their health is what the API routes' checks found.")
        w.line("lb_policy first")
        w.line(f"lb_try_duration {READINESS_TIMEOUT_S // 2}s")
    if rewrite is not None:
        w.line("# A fixed probe: always GET (no body), this path, no query.")
        w.line("method GET")
        w.line(f"rewrite {rewrite}?")
    w.line("header_up Host {upstream_hostport}")
    for name, value in (set_up or {}).items():
        w.line(shapes.header_up(name, value))


# How long the edge keeps trying LiteLLM for a request that could not be sent to any replica (none
# answering, one being replaced or restarting): the request waits instead of failing.
GATEWAY_TRY_S = 30
# How often the edge asks each replica whether it answers.
GATEWAY_HEALTH_INTERVAL_S = 1
# The largest request body the edge takes for LiteLLM. The edge reads the whole body before it asks any
# replica (so it can send it again), and holds it in memory while it does.
GATEWAY_MAX_BODY_BYTES = 32 * 1024 * 1024


# The query parameter that carries the caller's name to the balancer (set by the edge, never the client's).
CALLER_PARAM = "tlg_caller"


def sticky_callers(topology: Topology) -> bool:
    """Each caller's requests go to one replica: LiteLLM counts a caller's limits in the replica's memory."""
    return topology.limited and len(topology.gateway.addresses) > 1


def _caller_to_one_replica(w: Writer, caller: str) -> None:
    """Name the caller in the query the balancer hashes: the URI, unlike a header, cannot be removed by a
    `Connection` header; the client's own copy of the parameter is replaced."""
    w.line("# LiteLLM counts each caller's limits in the replica that serves it: the balancer sends each caller")
    w.line("# to one replica (another only while that one is down), by this parameter.")
    w.line(f"uri query {CALLER_PARAM} {caller}")


def _gateway_balancing(w: Writer, sticky: bool) -> None:
    if sticky:
        w.line("# Each caller to its own replica (a hash of its name over the replicas that answer); a request that")
        w.line("# cannot be sent to it (draining, restarting, gone) is tried on another, and waits for one.")
        w.open(f"lb_policy query {CALLER_PARAM}")
        w.line("fallback least_conn")
        w.close()
    else:
        w.line("# The replica with the fewest requests in flight (streams last); a request that cannot be sent to a")
        w.line("# replica (it is draining, restarting or gone) is tried on another, and waits for one to answer.")
        w.line("lb_policy least_conn")
    w.line(f"lb_try_duration {GATEWAY_TRY_S}s")
    w.line("lb_try_interval 250ms")
    w.line("health_uri /health/liveliness")
    w.line(f"health_interval {GATEWAY_HEALTH_INTERVAL_S}s")
    w.line("health_timeout 2s")
    w.line("fail_duration 2s")
    w.line("# A completion whose connection broke before any answer (a replica stopping as it was sent) is sent")
    w.line("# again, body and all: an LLM call changes nothing but the compute it costs.")
    w.open("lb_retry_match")
    w.line("method POST GET")
    w.close()
    w.line("# The client's whole body is read before any replica is asked: a body that breaks off (bad chunking,")
    w.line("# an early close) is the client's fault, and must never count as a replica failing (which would mark")
    w.line("# replicas down for every client) nor be tried again on each replica. Its size is bounded above.")
    w.line("request_buffers unlimited")


def _whole_body_first(w: Writer) -> None:
    """Bound the body the balancer below reads whole: a declared size over the bound is refused at once,
    and a body that grows past it (chunked) is cut there, so LiteLLM refuses what arrives."""
    limit = GATEWAY_MAX_BODY_BYTES
    w.line(f"# At most {limit // (1024 * 1024)} MiB of body, read whole by the edge before any replica is asked.")
    length = "{http.request.header.Content-Length}"
    w.line(f"@body_too_large expression `{length} != '' && int({length}) > {limit}`")
    w.line("header @body_too_large Content-Type application/json")
    too_large = json_error(f"Request body over {limit} bytes.", "request_too_large", 413)
    w.line(f"respond @body_too_large `{too_large}` 413")
    w.open("request_body")
    w.line(f"max_size {limit}")
    w.close()


def load_key(w: Writer, topology: Topology, var: str, file_name: str) -> None:
    """Read a key from its file into a request-scoped variable: read on every request, so a key written
    anew counts at once, and never in the edge's environment or this file."""
    w.line(shapes.read_key(var, topology.edge.keys_dir, file_name))


# How long a readiness check waits for LiteLLM (and LiteLLM for the backend) before saying "failing".
READINESS_TIMEOUT_S = 5
