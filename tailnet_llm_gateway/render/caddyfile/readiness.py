"""The edge's readiness report (/readyz) and its checks, and the answers for unreachable upstreams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from policy.gateway_contract import CLIENT_HEADER, EDGE_KEY_FILE, READINESS_CLIENT, markers

from ...topology.edge import BACKEND_CHECK_PATH, READINESS_PATH
from .proxy import READINESS_TIMEOUT_S, load_key, proxy
from .writer import Writer, action, json_error

if TYPE_CHECKING:
    from ...topology import Topology
    from ...topology.services import Service

EDGE_KEY_VAR = markers.EDGE_KEY_VAR


def _readiness_report(checks: Mapping[str, str]) -> str:
    """The Go template (Caddy's `templates`) that includes each check and reports only ok/failing."""
    includes = "".join(action(f'${name} := httpInclude "{path}"') for name, path in checks.items())
    all_ok = " ".join(f'(eq ${name} "ok")' for name in checks)
    ready = action(f"if and {all_ok}") + "true" + action("else") + "false" + action("end")
    backends = ",".join(f'"{action("$" + name)}"' for name in checks if name != "gateway")
    return f'{includes}{{"ready":{ready},"gateway":"{action("$gateway")}","backends":[{backends}]}}'


def readiness(w: Writer, topology: Topology) -> None:
    backends = topology.readiness_backends
    gateway = topology.gateway.service
    checks = {"gateway": f"{READINESS_PATH}/gateway"}
    checks.update({f"backend{i}": f"{READINESS_PATH}/backend/{i}" for i in range(len(backends))})
    body = _readiness_report(checks)
    w.line(f"# {READINESS_PATH}: does LiteLLM answer, and does each backend? No key, no SSO; it says only")
    w.line("# ok/failing, one entry a backend: no model name, no address. Fixed probes: GET only.")
    w.line("@readiness_not_get not method GET HEAD")
    w.open(f"handle {READINESS_PATH}")
    _only_get(w)
    w.open("templates")
    w.line("mime application/json")
    w.close()
    w.line("header Content-Type application/json")
    w.line(f"respond `{body}` 200")
    w.close()
    w.line()
    w.line("# The checks the report includes, one sub-request each; a failed check says so, never errs.")
    _readiness_check(w, topology, f"{READINESS_PATH}/gateway", gateway, "/health/liveliness", {"Authorization": ""})
    # The edge cannot reach the backends' networks: LiteLLM forwards the check, for the edge's readiness
    # identity only.
    asker = {"Authorization": f'"Bearer {{vars.{EDGE_KEY_VAR}}}"', CLIENT_HEADER: READINESS_CLIENT}
    for index in range(len(backends)):
        path = f"{READINESS_PATH}/backend/{index}"
        _readiness_check(w, topology, path, gateway, f"{BACKEND_CHECK_PATH}/{index}", asker)


def _only_get(w: Writer) -> None:
    w.line('header @readiness_not_get Allow "GET, HEAD"')
    w.line("respond @readiness_not_get 405")


def _readiness_check(
    w: Writer, topology: Topology, path: str, upstream: Service, probe: str, set_up: dict[str, str]
) -> None:
    w.open(f"handle {path}")
    w.open("route")
    w.line(f"import {markers.IDENTITY_SNIPPET}")
    _only_get(w)
    if EDGE_KEY_VAR in "".join(set_up.values()):
        load_key(w, topology, EDGE_KEY_VAR, EDGE_KEY_FILE)
    w.line("# One line for /readyz is enough; its sub-requests would add one each.")
    w.line("log_skip")
    proxy(w, topology, upstream, set_up, rewrite=probe)
    w.line("# A hung backend makes the check fail, not the report hang.")
    w.open("transport http")
    w.line(f"dial_timeout {READINESS_TIMEOUT_S}s")
    w.line(f"response_header_timeout {READINESS_TIMEOUT_S}s")
    w.close()
    w.line("@answered status 2xx")
    w.open("handle_response @answered")
    w.line('respond "ok" 200')
    w.close()
    w.open("handle_response")
    w.line('respond "failing" 200')
    w.close()
    w.close()
    w.close()
    w.close()


def errors(w: Writer) -> None:
    w.line("# When an upstream cannot be reached: a readiness check fails, an API client gets JSON.")
    w.open("handle_errors")
    w.line(f"@readiness path {READINESS_PATH}/*")
    w.line('respond @readiness "failing" 200')
    w.line("@api vars api_route true")
    w.line("header @api Content-Type application/json")
    message = "The gateway could not answer ({err.status_code} {err.status_text})."
    w.line(f"respond @api `{json_error(message, 'gateway_unavailable', '{err.status_code}')}` {{err.status_code}}")
    w.close()
