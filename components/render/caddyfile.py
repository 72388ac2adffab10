"""Topology -> Caddyfile. Pure and deterministic: the same topology gives the same bytes.

What the rendered file guarantees:
- SSO bypasses exist only where the settings declare them (auth `none`, `bearer` or `tailnet`) and for
  the edge's own readiness report; every other path, including the catch-all, runs `forward_auth`, whose
  401 becomes a 302 to the SSO start URL carrying the whole original URL.
- Identity and client-address headers a client sends are dropped on every route before anything else
  runs, so upstreams see only the values the SSO service, the edge or the gateway's node vouched for.
  What the edge vouches for is set on the proxied request itself (`header_up`), after the proxy has
  removed hop-by-hop headers: a client that names a header in its `Connection` header cannot remove it.
  Every upstream gets its own name as Host.
- An API route forwards only its allowed paths; refuses browser requests from origins not listed in
  `corsOrigins` (Origin and Sec-Fetch-Site); takes the client's key from `Authorization: Bearer` (any
  case of the scheme), `x-api-key` or `api-key`, compares it as exact text, and refuses two different
  keys; answers a missing or wrong key with a 401 JSON error itself; fails closed (503) when a key it
  needs is empty at run time; hands LiteLLM the edge's own key and the client's name, never a client's
  key; answers CORS preflights only for the configured origins.
- The readiness report and its checks answer GET (and HEAD) only and forward no query and no body.
- Logs (access and errors) are JSON lines without headers (no key, no cookie) and without the value of
  any query parameter.
- No secret is written: keys are read from the environment at run time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

from policy.gateway_contract import EDGE_KEY_FILE, READINESS_CLIENT

from ..topology import (
    BACKEND_CHECK_PATH,
    CLIENT_HEADER,
    EDGE_HEALTH_PORT,
    READINESS_PATH,
    TAILNET_CLIENT_PREFIX,
    Client,
    Route,
    Service,
    Topology,
)

# Headers upstreams may treat as "who is this user". A client must never be able to set them.
CLIENT_IDENTITY_HEADERS = (
    "X-Forwarded-Email",
    "X-Forwarded-User",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-*",
    "Remote-*",
    "X-Remote-*",
    "X-Webauth-*",
    "X-Email",
    "X-User",
    # Who the edge says is calling LiteLLM.
    CLIENT_HEADER,
)
# Headers that say which address a request came from. Caddy sets X-Forwarded-For, -Proto and -Host itself
# (it trusts no proxy's copy); these others would pass as the client wrote them.
CLIENT_ADDRESS_HEADERS = (
    "X-Real-IP",
    "Forwarded",
    "X-Forwarded",
    "Forwarded-For",
    "True-Client-IP",
    "X-Client-IP",
    "Client-IP",
    "X-Cluster-Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Original-Forwarded-For",
    "X-Originating-IP",
)
# Set by a Tailscale serve node for its callers (it drops a client's own copies): only the gateway's node
# may say who a caller is.
TAILSCALE_HEADERS = "Tailscale-*"
# The logs keep a query's parameter names and drop every value (and any parameter without a name), so no
# key reaches them whatever the parameter is called, even in a query that does not parse. (RE2, as Caddy's
# regexp log filter runs it.)
QUERY_VALUES = "([?&])(?:([^=&]*)=[^&]*|[^&]*)"
QUERY_NAMES_ONLY = "${1}${2}"
# LiteLLM's own CORS answer is `*` for every origin; the edge decides instead.
CORS_RESPONSE_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
)
# The edge's own key toward LiteLLM, as the request-scoped variable its file is read into.
EDGE_KEY_VAR = "key_edge"
# Where the edge answers, on its container-loopback health listener, the id of the config it runs.
CONFIG_ID_PATH = "/config-id"
_CONFIG_ID_LINE = f'respond {CONFIG_ID_PATH} "{{id}}" 200'
# How long a readiness check waits for LiteLLM (and LiteLLM for the backend) before saying "failing".
READINESS_TIMEOUT_S = 5
# Where each accepted key header's value is read from (the Authorization value without its scheme).
_KEY_SOURCES = {
    "authorization": "{bearer_key}",
    "x-api-key": "{http.request.header.X-Api-Key}",
    "api-key": "{http.request.header.Api-Key}",
}


def _json_error(message: str, kind: str, code: int | str) -> str:
    # LiteLLM's error shape, so clients parse the edge's answers like LiteLLM's own.
    error = {"error": {"message": message, "type": kind, "param": None, "code": str(code)}}
    return json.dumps(error, separators=(",", ":"))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("\t" * self.depth + text) if text else "")

    def open(self, head: str) -> None:
        self.line(f"{head} {{" if head else "{")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.line("}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_caddyfile(topology: Topology, stack: str) -> str:
    w = _Writer()
    w.line(f"# Rendered by tailnet-llm-gateway from Pulumi.{stack}.yaml. Do not edit: change the stack")
    w.line("# settings and render again (python -m components render).")
    w.open("")
    w.line("# Certificates come from Tailscale (or no TLS for local checks): no ACME, no :80 redirects.")
    w.line("auto_https off")
    w.line("# No admin API: a new Caddyfile reaches Caddy by replacing its container.")
    w.line("admin off")
    w.line("# No HTTP/3: it would advertise Caddy's in-container port in Alt-Svc, and no UDP port is published.")
    w.open("servers")
    w.line("protocols h1 h2")
    w.close()
    w.line("# A new Caddyfile is loaded in place (caddy run --watch): requests and streams already running finish")
    w.line("# under the config they started with, for as long as a stream may last.")
    w.line(f"grace_period {topology.edge.grace_s}s")
    w.line("# Caddy's own log lines (errors name the request): no headers, no query values, as in the access log.")
    w.open("log default")
    w.line("output stderr")
    _log_filter(w)
    w.close()
    w.close()
    w.line()
    _identity_snippet(w, topology)
    if topology.sso is not None and any(r.auth == "sso" for r in topology.routes):
        w.line()
        _sso_snippet(w, topology)
    if topology.site.listen is None:
        w.line()
        w.line("# Container healthcheck only: loopback inside the container, never published.")
        w.open(f"http://127.0.0.1:{EDGE_HEALTH_PORT}")
        w.line("bind 127.0.0.1")
        w.line('respond /healthz "ok" 200')
        w.line("# Which config this edge runs: the hash of this file without this line (stack output edgeConfigId).")
        w.line(_CONFIG_ID_LINE)
        w.line("respond 421")
        w.close()
    w.line()
    w.open(topology.site.address)
    if topology.site.listen is not None:
        w.line("# Local check mode (--listen): plain HTTP on a loopback address, no certificates.")
        w.line(f"bind {topology.site.listen.host}")
    elif topology.site.terminates_tls:
        w.line("# Certificate files from `tailscale cert`, mounted read-only.")
        w.line(f"tls {topology.site.cert_file} {topology.site.key_file}")
    else:
        w.line("# The gateway's Tailscale node terminates TLS and proxies here; no host port leads here.")
    node_address = _node_address(topology)
    if node_address is not None:
        w.line(f"# The gateway's Tailscale node, at its pinned address ({node_address}); see strip_client_identity.")
        w.line(f"@not_from_node not remote_ip {node_address}")
    w.line()
    _access_log(w)
    w.line()
    _readiness(w, topology)
    for route in topology.routes:
        w.line()
        _route(w, route, topology)
    w.line()
    _errors(w)
    w.close()
    text = w.text()
    return text.replace(_CONFIG_ID_LINE, _CONFIG_ID_LINE.format(id=config_id(text)))


def config_id(caddyfile: str) -> str:
    """The id a Caddyfile reports as live: the sha256 (first 16 hex digits) of the file without its id."""
    unfilled = re.sub(r'respond /config-id "[0-9a-f]*" 200', _CONFIG_ID_LINE, caddyfile)
    return hashlib.sha256(unfilled.encode()).hexdigest()[:16]


def _log_filter(w: _Writer) -> None:
    w.open("format filter")
    w.line("request>headers delete")
    w.line("resp_headers delete")
    w.line(f'request>uri regexp "{QUERY_VALUES}" "{QUERY_NAMES_ONLY}"')
    w.line("wrap json")
    w.close()


def _access_log(w: _Writer) -> None:
    w.line("# One JSON line a request: method, path, status, duration, who (where known). No headers, so")
    w.line("# no key and no cookie, and of the query only the parameter names.")
    w.open("log")
    w.line("output stdout")
    _log_filter(w)
    w.close()


def _identity_snippet(w: _Writer, topology: Topology) -> None:
    w.line("# Identity and client-address headers are trusted only from the SSO service, the edge itself and")
    w.line("# the gateway's node: drop whatever a client sent.")
    w.open("(strip_client_identity)")
    for name in _identity_headers(topology):
        w.line(f"request_header -{name}")
    if _node_address(topology) is not None:
        w.line("# Tailscale's identity headers count only when the gateway's node sent them (serve sets them).")
        w.line(f"request_header @not_from_node -{TAILSCALE_HEADERS}")
        w.line("# So the access log can say which tailnet user called (read when the line is written).")
        w.line("log_append tailnet_user {http.request.header.Tailscale-User-Login}")
    else:
        w.line("# No Tailscale node in front of this edge: nothing here may say who a tailnet caller is.")
        w.line(f"request_header -{TAILSCALE_HEADERS}")
    w.close()


def _identity_headers(topology: Topology) -> list[str]:
    """Every header a client must not set: the fixed identity and address headers, and whatever the SSO
    service's answers are copied into."""
    copied = [dst for _, dst in topology.sso.copy_headers] if topology.sso is not None else []
    names = [*CLIENT_IDENTITY_HEADERS, *CLIENT_ADDRESS_HEADERS, *copied]
    return list(dict.fromkeys(names))


def _node_address(topology: Topology) -> str | None:
    return topology.node.address if topology.node is not None else None


def _proxy(
    w: _Writer,
    topology: Topology,
    upstream: Service,
    set_up: dict[str, str] | None = None,
    rewrite: str | None = None,
) -> None:
    """A reverse_proxy that gives the upstream its own name as Host, not the client's.

    `set_up` are headers the edge vouches for (a value, or "" to remove): set on the proxied request
    after the proxy dropped hop-by-hop headers, so no `Connection` header a client sends removes them.
    LiteLLM is asked across its replicas, only those that answer their health check.
    """
    gateway = topology.gateway
    to_gateway = upstream.name == gateway.service.name
    w.open("reverse_proxy " + (" ".join(gateway.addresses) if to_gateway else upstream.address))
    if to_gateway and rewrite is None:
        _gateway_balancing(w)
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
        w.line(f"header_up {name} {value}" if value else f"header_up -{name}")


# How long the edge keeps trying LiteLLM for a request that could not be sent to any replica (none
# answering, one being replaced or restarting): the request waits instead of failing.
GATEWAY_TRY_S = 30
# How often the edge asks each replica whether it answers.
GATEWAY_HEALTH_INTERVAL_S = 1
# The request body the edge keeps to send again (larger bodies are streamed and not retried).
GATEWAY_RETRY_BODY = "1MiB"


def _gateway_balancing(w: _Writer) -> None:
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
    w.line(f"request_buffers {GATEWAY_RETRY_BODY}")


def _sso_snippet(w: _Writer, topology: Topology) -> None:
    sso = topology.sso
    assert sso is not None
    base = topology.site.redirect_base
    w.line(f"# Ask {sso.service.name} whether the session cookie is valid; copy only its identity headers.")
    w.open("(sso)")
    w.open(f"forward_auth {sso.service.address}")
    w.line(f"uri {sso.auth_path}")
    w.line("header_up Host {upstream_hostport}")
    w.line("copy_headers " + " ".join(f"{src}>{dst}" for src, dst in sso.copy_headers))
    w.line("# No session: sign in, then come back to the original URL (path and query, before any prefix")
    w.line("# strip), escaped so that a `&` in its query does not end the `rd` parameter.")
    w.line("@unauthenticated status 401")
    w.open("handle_response @unauthenticated")
    w.line(f"redir * {base}{sso.start_path}?rd={base}{{http.request.uri_escaped}} 302")
    w.close()
    w.close()
    w.line("log_append user {http.request.header.X-Forwarded-Email}")
    w.close()


def _sso_identity(topology: Topology) -> dict[str, str]:
    """What the SSO service vouched for, set again on the proxied request (see `_proxy`)."""
    assert topology.sso is not None
    return {dst: f"{{http.request.header.{dst}}}" for _, dst in topology.sso.copy_headers}


def _action(text: str) -> str:
    return "{{ " + text + " }}"  # spaces inside: `{$` would be a Caddyfile environment variable


def _readiness_report(checks: Mapping[str, str]) -> str:
    """The Go template (Caddy's `templates`) that includes each check and reports only ok/failing."""
    includes = "".join(_action(f'${name} := httpInclude "{path}"') for name, path in checks.items())
    all_ok = " ".join(f'(eq ${name} "ok")' for name in checks)
    ready = _action(f"if and {all_ok}") + "true" + _action("else") + "false" + _action("end")
    backends = ",".join(f'"{_action("$" + name)}"' for name in checks if name != "gateway")
    return f'{includes}{{"ready":{ready},"gateway":"{_action("$gateway")}","backends":[{backends}]}}'


def _readiness(w: _Writer, topology: Topology) -> None:
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


def _only_get(w: _Writer) -> None:
    w.line('header @readiness_not_get Allow "GET, HEAD"')
    w.line("respond @readiness_not_get 405")


def _readiness_check(
    w: _Writer, topology: Topology, path: str, upstream: Service, probe: str, set_up: dict[str, str]
) -> None:
    w.open(f"handle {path}")
    w.open("route")
    w.line("import strip_client_identity")
    _only_get(w)
    if EDGE_KEY_VAR in "".join(set_up.values()):
        _load_key(w, topology, EDGE_KEY_VAR, EDGE_KEY_FILE)
    w.line("# One line for /readyz is enough; its sub-requests would add one each.")
    w.line("log_skip")
    _proxy(w, topology, upstream, set_up, rewrite=probe)
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


def _load_key(w: _Writer, topology: Topology, var: str, file_name: str) -> None:
    """Read a key from its file into a request-scoped variable: read on every request, so a key written
    anew counts at once, and never in the edge's environment or this file."""
    w.line(f"vars {var} {{file.{topology.edge.keys_dir}/{file_name}}}")


def _key_var(client: Client) -> str:
    return "key_" + client.key_file.replace("-", "_")


def _errors(w: _Writer) -> None:
    w.line("# When an upstream cannot be reached: a readiness check fails, an API client gets JSON.")
    w.open("handle_errors")
    w.line(f"@readiness path {READINESS_PATH}/*")
    w.line('respond @readiness "failing" 200')
    w.line("@api vars api_route true")
    w.line("header @api Content-Type application/json")
    message = "The gateway could not answer ({err.status_code} {err.status_text})."
    w.line(f"respond @api `{_json_error(message, 'gateway_unavailable', '{err.status_code}')}` {{err.status_code}}")
    w.close()


def _route(w: _Writer, route: Route, topology: Topology) -> None:
    if route.is_api:
        _api_route(w, route, topology)
        return
    matcher = "" if route.is_catch_all else f" {route.path}"
    if route.respond is not None:
        w.line(f"# {route.path} bypasses SSO: a fixed answer for monitors.")
        w.open(f"handle{matcher}")
        # The settings' grammar keeps quotes, backslashes and braces out of a fixed answer; the explicit `*`
        # keeps an answer such as "/ok" from being read as a path matcher.
        w.line(f'respond * "{route.respond}" 200')
        w.close()
        return
    assert route.upstream is not None
    if route.auth == "none":
        w.line(f"# {route.path} bypasses SSO: {route.upstream.name}'s own sign-in endpoints.")
    elif route.is_catch_all:
        w.line(f"# Everything else requires SSO and goes to {route.upstream.name}.")
    else:
        w.line(f"# {route.path} requires SSO and goes to {route.upstream.name}.")
    w.open(f"handle{matcher}")
    # `route` keeps this order; by default Caddy would run forward_auth before request_header.
    w.open("route")
    w.line("import strip_client_identity")
    if route.auth == "sso":
        w.line("import sso")
    if route.strip_prefix:
        w.line(f"# Strip {route.prefix} after SSO, so the sign-in redirect keeps the full URL.")
        w.line(f"uri strip_prefix {route.prefix}")
    _proxy(w, topology, route.upstream, _sso_identity(topology) if route.auth == "sso" else None)
    w.close()
    w.close()
    w.close()


def _key_expression(route: Route, key: str) -> str:
    """CEL: the request presents `key` (an env placeholder) in every accepted header it fills, and fills one.

    Placeholders in an expression are read as strings at run time, so the key is compared as exact
    text, whatever characters it holds; two different keys in two headers match no key.
    """
    sources = [_KEY_SOURCES[name] for name in route.key_headers]
    each = " && ".join(f"({source} == '' || {source} == {key})" for source in sources)
    return f"{key} != '' && {each} && ({' + '.join(sources)}) != ''"


def _matcher_name(client: Client) -> str:
    return "client_" + client.name.replace("-", "_")


def _route_keys(route: Route) -> dict[str, str]:
    """The keys a route reads (variable -> file): each of its clients', and the edge's own toward LiteLLM.
    Without any of them the route answers 503."""
    keys = {_key_var(client): client.key_file for client in route.clients}
    if route.to_gateway:
        keys[EDGE_KEY_VAR] = EDGE_KEY_FILE
    return keys


def _api_route(w: _Writer, route: Route, topology: Topology) -> None:
    assert route.upstream is not None
    name = route.upstream.name
    directive = f"handle_path {route.path}" if route.strip_prefix else f"handle {route.path}"
    guard = "their keys guard it" if route.auth == "bearer" else "the tailnet policy guards it"
    w.line(f"# {route.path} bypasses SSO for API clients; {guard} instead.")
    if route.strip_prefix:
        w.line(f"# handle_path strips {route.prefix}, so {name} sees its own paths.")
    w.open(directive)
    w.open("route")
    w.line("import strip_client_identity")
    w.line("vars api_route true")
    keys = _route_keys(route)
    if keys:
        w.line("# The keys this route checks and hands on, from the edge's keys directory.")
        for var, file_name in keys.items():
            _load_key(w, topology, var, file_name)
        w.line("# Fail closed: with an empty key, an empty token would pass.")
        empty = " || ".join(f"{{vars.{var}}} == ''" for var in keys)
        w.line(f"@no_key_configured expression `{empty}`")
        w.line("header @no_key_configured Content-Type application/json")
        no_key = _json_error("The gateway has no API key configured.", "no_key_configured", 503)
        w.line(f"respond @no_key_configured `{no_key}` 503")
    w.line(f"# Only the paths {name} serves to clients; its docs, admin pages and the rest stay off the tailnet.")
    w.line("@not_api not path " + " ".join(route.forwarded_paths))
    w.line("header @not_api Content-Type application/json")
    w.line(f"respond @not_api `{_json_error('Not found.', 'not_found', 404)}` 404")
    _refuse_other_sites(w, route)
    if route.cors_origins:
        _cors_preflight(w, route)
    if route.auth == "bearer":
        _name_keyed_client(w, route)
    else:
        _name_tailnet_caller(w, route)
    w.line("log_append client {vars.client}")
    w.line('@no_client vars client ""')
    w.line("header @no_client Content-Type application/json")
    if route.auth == "bearer":
        w.line('header @no_client WWW-Authenticate "Bearer"')
        refused = _json_error("Authentication Error, missing or invalid API key.", "auth_error", 401)
    else:
        refused = _json_error(
            f"Authentication Error: this route needs the tailnet capability {route.capability}.", "auth_error", 401
        )
    w.line(f"respond @no_client `{refused}` 401")
    w.line("# No client credential goes further than the edge.")
    for header in ("Authorization", "X-Api-Key", "Api-Key"):
        w.line(f"request_header -{header}")
    if route.cors_origins:
        w.line("# Pages of an allowed origin may read the answers; no other origin may.")
        w.open("@cors_origin")
        _header_any_of(w, "Origin", route.cors_origins)
        w.close()
        w.open("header @cors_origin")
        w.line(">Access-Control-Allow-Origin {http.request.header.Origin}")
        w.line(">Vary Origin")
        w.close()
    if route.to_gateway:
        w.line(f"# {name} gets the edge's own key and the client's name; never a client's credential.")
        credential = f'"Bearer {{vars.{EDGE_KEY_VAR}}}"'
    else:
        w.line(f"# {name} gets the client's name and no credential: the edge has checked it.")
        credential = ""
    _proxy(w, topology, route.upstream, {"Authorization": credential, CLIENT_HEADER: "{vars.client}"})
    w.line("# Streams (chat chunks, server-sent events) reach the client as the upstream writes them.")
    w.line("flush_interval -1")
    for header in CORS_RESPONSE_HEADERS:
        w.line(f"header_down -{header}")
    if route.to_gateway:
        w.line(f"# {name} answers 500 when a backend fails: to a client that is a bad gateway (its JSON says why).")
        w.line("@backend_failed status 500")
        w.open("handle_response @backend_failed")
        w.line("copy_response 502")
        w.close()
    w.close()
    w.close()
    w.close()


def _refuse_other_sites(w: _Writer, route: Route) -> None:
    """Browsers send Origin (and Sec-Fetch-Site): a page of another site gets nothing done here, whatever
    the method, since a tailnet caller's identity or a cookie would go with its requests."""
    w.line("# A browser request from a page whose origin is not listed is refused, whatever its method.")
    w.open("@other_origin")
    w.line("header Origin *")
    _not_allowed_origin(w, route)
    w.close()
    w.open("@other_site")
    _header_any_of(w, "Sec-Fetch-Site", ("cross-site", "same-site"))
    _not_allowed_origin(w, route)
    w.close()
    refused = _json_error("Cross-site request refused: the page's origin is not in corsOrigins.", "cross_site", 403)
    for matcher in ("other_origin", "other_site"):
        w.line(f"header @{matcher} Content-Type application/json")
        w.line(f"respond @{matcher} `{refused}` 403")


def _header_any_of(w: _Writer, field: str, values: tuple[str, ...]) -> None:
    # One line a value: the Caddyfile's header matcher takes one value, and repeated ones are OR'ed.
    for value in values:
        w.line(f"header {field} {value}")


def _not_allowed_origin(w: _Writer, route: Route) -> None:
    if route.cors_origins:
        w.open("not")
        _header_any_of(w, "Origin", route.cors_origins)
        w.close()


def _name_keyed_client(w: _Writer, route: Route) -> None:
    w.line("# The client's key, from whichever header it came in (the Authorization scheme in any case).")
    w.open("map {http.request.header.Authorization} {bearer_key}")
    w.line('`~(?i)^bearer\\s+(.+)$` "${1}"')
    w.line('default ""')
    w.close()
    w.line("# Whose key it is: each client allowed here has its own, compared as exact text.")
    for client in route.clients:
        matcher = _matcher_name(client)
        w.line(f"@{matcher} expression `{_key_expression(route, '{vars.' + _key_var(client) + '}')}`")
        w.line(f"vars @{matcher} client {client.name}")


def _name_tailnet_caller(w: _Writer, route: Route) -> None:
    assert route.capability is not None
    w.line(f"# A caller the tailnet policy granted {route.capability}, as the node's serve says (it sets the")
    w.line("# header itself; a client's copy is dropped unless the request comes from the node). A user's")
    w.line("# device carries its login; a tagged device has none.")
    pattern = '"' + re.escape(route.capability) + '":\\s*\\['
    w.line(f"@tailnet_caller header_regexp Tailscale-App-Capabilities `{pattern}`")
    w.line(f"vars @tailnet_caller client {TAILNET_CLIENT_PREFIX}tagged-device")
    w.open("@tailnet_user")
    w.line(f"header_regexp Tailscale-App-Capabilities `{pattern}`")
    w.line("header Tailscale-User-Login *")
    w.close()
    w.line(f"vars @tailnet_user client {TAILNET_CLIENT_PREFIX}{{http.request.header.Tailscale-User-Login}}")


def _cors_preflight(w: _Writer, route: Route) -> None:
    w.line("# A browser's CORS preflight from an allowed origin, answered here: it carries no key by design.")
    w.open("@preflight")
    w.line("method OPTIONS")
    _header_any_of(w, "Origin", route.cors_origins)
    w.line("header Access-Control-Request-Method *")
    w.close()
    w.open("header @preflight")
    w.line("Access-Control-Allow-Origin {http.request.header.Origin}")
    w.line('Access-Control-Allow-Methods "GET, POST, OPTIONS"')
    w.line("Access-Control-Allow-Headers {http.request.header.Access-Control-Request-Headers}")
    w.line("Access-Control-Max-Age 600")
    w.line("Vary Origin")
    w.close()
    w.line("respond @preflight 204")
