"""API routes (bearer and tailnet): which paths, which origins, whose key, which identity goes on."""

from __future__ import annotations

from policy.gateway_contract import BEARER, CLIENT_HEADER, EDGE_KEY_FILE, LITELLM_KEY_HEADERS, markers

from ...topology import TAILNET_CLIENT_PREFIX, Client, Route, Topology
from .identity import granted
from .proxy import load_key, proxy
from .writer import Writer, header_any_of, json_error

EDGE_KEY_VAR = markers.EDGE_KEY_VAR
CLIENT_VAR = markers.CLIENT_VAR
# The calling client's name, as a placeholder.
CLIENT = f"{{vars.{CLIENT_VAR}}}"
NO_CLIENT = markers.NO_CLIENT
NOT_API = markers.NOT_API
TAILNET_CALLER = markers.TAILNET_CALLER
# LiteLLM's own CORS answer is `*` for every origin; the edge decides instead.
CORS_RESPONSE_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
)


# LiteLLM reads these from a request to change how it serves it (x-litellm-num-retries, -timeout, -tags,
# -model, -spend-logs-metadata, litellm-trace-id, ...).
LITELLM_CONTROL_HEADERS = ("X-Litellm-*", "Litellm-*")


# Where each accepted key header's value is read from (the Authorization value without its scheme).
_KEY_SOURCES = {
    "authorization": "{bearer_key}",
    "x-api-key": "{http.request.header.X-Api-Key}",
    "api-key": "{http.request.header.Api-Key}",
}


def _key_var(client: Client) -> str:
    return markers.KEY_VAR_PREFIX + client.key_file.replace("-", "_")


def _key_expression(route: Route, key: str) -> str:
    """CEL: the request presents `key` (an env placeholder) in every accepted header it fills, and fills one.

    Placeholders in an expression are read as strings at run time, so the key is compared as exact
    text, whatever characters it holds; two different keys in two headers match no key.
    """
    sources = [_KEY_SOURCES[name] for name in route.key_headers]
    each = " && ".join(f"({source} == '' || {source} == {key})" for source in sources)
    return f"{key} != '' && {each} && ({' + '.join(sources)}) != ''"


def _matcher_name(client: Client) -> str:
    return markers.CLIENT_MATCHER_PREFIX + client.name.replace("-", "_")


def _no_key(route: Route) -> str:
    """CEL: the edge's own key is empty (an API route to LiteLLM), or every client's key is."""
    empty = []
    if route.to_gateway:
        empty.append(f"{{vars.{EDGE_KEY_VAR}}} == ''")
    if route.clients:
        empty.append("(" + " && ".join(f"{{vars.{_key_var(client)}}} == ''" for client in route.clients) + ")")
    return " || ".join(empty)


def _route_keys(route: Route) -> dict[str, str]:
    """The keys a route reads (variable -> file): each of its clients', and the edge's own toward LiteLLM."""
    keys = {_key_var(client): client.key_file for client in route.clients}
    if route.to_gateway:
        keys[EDGE_KEY_VAR] = EDGE_KEY_FILE
    return keys


def api_route(w: Writer, route: Route, topology: Topology) -> None:
    assert route.upstream is not None
    name = route.upstream.name
    directive = f"handle_path {route.path}" if route.strip_prefix else f"handle {route.path}"
    guard = "their keys guard it" if route.auth == BEARER else "the tailnet policy guards it"
    w.line(f"# {route.path} bypasses SSO for API clients; {guard} instead.")
    if route.strip_prefix:
        w.line(f"# handle_path strips {route.prefix}, so {name} sees its own paths.")
    w.open(directive)
    w.open("route")
    w.line(f"import {markers.IDENTITY_SNIPPET}")
    w.line("vars api_route true")
    keys = _route_keys(route)
    if keys:
        w.line("# The keys this route checks and hands on, from the edge's keys directory.")
        for var, file_name in keys.items():
            load_key(w, topology, var, file_name)
        w.line("# Fail closed: without the edge's own key, or without any client's key, the route answers 503.")
        w.line("# One client's empty key (its file being written) keeps only that client out: its matcher")
        w.line("# below needs a key that is not empty.")
        w.line(f"@no_key_configured expression `{_no_key(route)}`")
        w.line("header @no_key_configured Content-Type application/json")
        no_key = json_error("The gateway has no API key configured.", "no_key_configured", 503)
        w.line(f"respond @no_key_configured `{no_key}` 503")
    w.line(f"# Only the paths {name} serves to clients; its docs, admin pages and the rest stay off the tailnet.")
    w.line(f"@{NOT_API} not path " + " ".join(route.forwarded_paths))
    w.line(f"header @{NOT_API} Content-Type application/json")
    w.line(f"respond @{NOT_API} `{json_error('Not found.', 'not_found', 404)}` 404")
    _refuse_other_sites(w, route)
    if route.cors_origins:
        _cors_preflight(w, route)
    if route.auth == BEARER:
        _name_keyed_client(w, route)
    else:
        _name_tailnet_caller(w, route)
    w.line(f"log_append {CLIENT_VAR} {CLIENT}")
    w.line(f'@{NO_CLIENT} vars {CLIENT_VAR} ""')
    w.line(f"header @{NO_CLIENT} Content-Type application/json")
    if route.auth == BEARER:
        w.line(f'header @{NO_CLIENT} WWW-Authenticate "Bearer"')
        refused = json_error("Authentication Error, missing or invalid API key.", "auth_error", 401)
    else:
        refused = json_error(
            f"Authentication Error: this route needs the tailnet capability {route.capability}.", "auth_error", 401
        )
    w.line(f"respond @{NO_CLIENT} `{refused}` 401")
    w.line("# No client credential goes further than the edge: none of the headers LiteLLM takes a key from.")
    for header in LITELLM_KEY_HEADERS:
        w.line(f"request_header -{header}")
    if route.to_gateway:
        w.line(f"# Nor any of {route.upstream.name}'s own control headers (retries, timeouts, tags, routing, spend")
        w.line("# metadata): what a request may ask of it is the stack's to say, not a client's.")
        for header in LITELLM_CONTROL_HEADERS:
            w.line(f"request_header -{header}")
    if route.cors_origins:
        w.line("# Pages of an allowed origin may read the answers; no other origin may.")
        w.open("@cors_origin")
        header_any_of(w, "Origin", route.cors_origins)
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
    proxy(w, topology, route.upstream, {"Authorization": credential, CLIENT_HEADER: CLIENT}, caller=CLIENT)
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


def _refuse_other_sites(w: Writer, route: Route) -> None:
    """Browsers send Origin (and Sec-Fetch-Site): a page of another site gets nothing done here, whatever
    the method, since a tailnet caller's identity or a cookie would go with its requests."""
    w.line("# A browser request from a page whose origin is not listed is refused, whatever its method.")
    w.open("@other_origin")
    w.line("header Origin *")
    _not_allowed_origin(w, route)
    w.close()
    w.open("@other_site")
    header_any_of(w, "Sec-Fetch-Site", ("cross-site", "same-site"))
    _not_allowed_origin(w, route)
    w.close()
    refused = json_error("Cross-site request refused: the page's origin is not in corsOrigins.", "cross_site", 403)
    for matcher in ("other_origin", "other_site"):
        w.line(f"header @{matcher} Content-Type application/json")
        w.line(f"respond @{matcher} `{refused}` 403")


def _not_allowed_origin(w: Writer, route: Route) -> None:
    if route.cors_origins:
        w.open("not")
        header_any_of(w, "Origin", route.cors_origins)
        w.close()


def _name_keyed_client(w: Writer, route: Route) -> None:
    w.line("# The client's key, from whichever header it came in (the Authorization scheme in any case).")
    w.open("map {http.request.header.Authorization} {bearer_key}")
    w.line('`~(?i)^bearer\\s+(.+)$` "${1}"')
    w.line('default ""')
    w.close()
    w.line("# Whose key it is: each client allowed here has its own, compared as exact text.")
    for client in route.clients:
        matcher = _matcher_name(client)
        w.line(f"@{matcher} expression `{_key_expression(route, '{vars.' + _key_var(client) + '}')}`")
        w.line(f"vars @{matcher} {CLIENT_VAR} {client.name}")


def _name_tailnet_caller(w: Writer, route: Route) -> None:
    assert route.capability is not None
    w.line(f"# A caller the tailnet policy granted {route.capability}, as the node's serve says (it sets the")
    w.line("# header itself; a client's copy is dropped unless the request comes from the node). A user's")
    w.line("# device carries its login; a tagged device has none, and is named by its tailnet address, which")
    w.line("# serve sets in X-Forwarded-For (each device is limited on its own).")
    pattern = granted(route.capability)
    w.open(f"@{TAILNET_CALLER}")
    w.line(f"header_regexp Tailscale-App-Capabilities `{pattern}`")
    w.line("header_regexp X-Forwarded-For `^[0-9A-Fa-f.:]+$`")
    w.close()
    w.line(f"vars @{TAILNET_CALLER} {CLIENT_VAR} {TAILNET_CLIENT_PREFIX}device:{{http.request.header.X-Forwarded-For}}")
    w.open("@tailnet_user")
    w.line(f"header_regexp Tailscale-App-Capabilities `{pattern}`")
    w.line("header Tailscale-User-Login *")
    w.close()
    w.line(f"vars @tailnet_user {CLIENT_VAR} {TAILNET_CLIENT_PREFIX}{{http.request.header.Tailscale-User-Login}}")


def _cors_preflight(w: Writer, route: Route) -> None:
    w.line("# A browser's CORS preflight from an allowed origin, answered here: it carries no key by design.")
    w.open("@preflight")
    w.line("method OPTIONS")
    header_any_of(w, "Origin", route.cors_origins)
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
