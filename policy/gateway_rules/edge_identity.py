"""Rules on who the edge says is calling: each bearer route accepts exactly its clients' keys, the identity
rides on the proxied request, Tailscale's identity headers count only from the node."""

from __future__ import annotations

import re

from gateway_contract import (
    API_AUTH,
    BEARER,
    CLIENT_HEADER,
    MASTER_CLIENT_NAME,
    MASTER_KEY_ENV,
    MASTER_KEY_FILE,
    TAILNET_NODE,
    Role,
    client_key_file,
    markers,
)
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import caddyfile_of, containers_in, declarations_of, edges_in, proxy_lines, role_of, site_blocks

CLIENT_NAMING = re.compile(rf"^\s*vars @(\w+) {markers.CLIENT_VAR} ([\w-]+)\s*$", re.M)
CLIENT_MATCHER = re.compile(r"^\s*@(\w+) expression `([^`]*)`", re.M)
VARS_PLACEHOLDER = re.compile(rf"\{{vars\.({markers.KEY_VAR_PREFIX}\w+)\}}")
# `vars key_x {file.<dir>/<file>}`: which key file a route reads into which variable.
KEY_FILE_READ = re.compile(rf"^\s*vars ({markers.KEY_VAR_PREFIX}\w+) \{{file\.[^}}]*/([^/}}]+)\}}\s*$", re.M)


def api_routes_accept_declared_clients(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources) or {}
    allowed = {
        r.get("path"): set(r.get("clients") or []) for r in declared.get("routes") or [] if r.get("auth") == BEARER
    }
    for edge in edges_in(args.resources):
        for head, body in site_blocks(caddyfile_of(args.resources)):
            parts = head.split()
            path = parts[1] if len(parts) > 1 else "/*"
            named = dict((m.group(1), m.group(2)) for m in CLIENT_NAMING.finditer(body))
            if path not in allowed:
                if named:
                    report(f"`{head}` names clients {sorted(named.values())} but is no declared bearer route", edge.urn)
                continue
            if set(named.values()) != allowed[path]:
                accepted, declared_there = sorted(named.values()), sorted(allowed[path])
                report(f"`{head}` accepts the keys of {accepted}; the settings allow {declared_there}", edge.urn)
            expressions = {m.group(1): set(VARS_PLACEHOLDER.findall(m.group(2))) for m in CLIENT_MATCHER.finditer(body)}
            files = {m.group(1): m.group(2) for m in KEY_FILE_READ.finditer(body)}
            for matcher, client in named.items():
                own = MASTER_KEY_FILE if client == MASTER_CLIENT_NAME else client_key_file(client)
                compared = {files.get(var) for var in expressions.get(matcher, set())}
                if compared != {own}:
                    report(f"`{head}` names {client} on a key other than its own (the file {own})", edge.urn)


def api_identity_on_the_proxied_request(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources) or {}
    api = [r.get("path") for r in declared.get("routes") or [] if r.get("auth") in API_AUTH and r.get("api", True)]
    caddyfile = caddyfile_of(args.resources)
    for edge in edges_in(args.resources):
        for line in caddyfile.splitlines():
            stripped = line.strip()
            sets_header = stripped.startswith(("header_up ", "request_header ", "header "))
            handed = [v for v in VARS_PLACEHOLDER.findall(stripped) if v != markers.EDGE_KEY_VAR]
            if sets_header and (handed or MASTER_KEY_ENV in stripped):
                report(f"the edge hands on a key it compares (`{stripped}`); LiteLLM gets the edge's own key", edge.urn)
        for head, body in site_blocks(caddyfile):
            parts = head.split()
            if len(parts) < 2 or parts[1] not in api:
                continue
            proxy = proxy_lines(body)
            if f"header_up {CLIENT_HEADER} {{vars.{markers.CLIENT_VAR}}}" not in proxy:
                report(
                    f"`{head}` does not name the client on the proxied request (header_up {CLIENT_HEADER})", edge.urn
                )
            if not any(line.startswith(("header_up Authorization ", "header_up -Authorization")) for line in proxy):
                report(f"`{head}` leaves the upstream's Authorization to the client", edge.urn)


NOT_FROM_NODE = re.compile(rf"^\s*@{markers.NOT_FROM_NODE} not remote_ip (\S+)\s*$", re.M)
IDENTITY_SNIPPET = re.compile(rf"^\({markers.IDENTITY_SNIPPET}\) \{{\n(.*?)^\}}", re.M | re.S)


def tailnet_identity_only_from_the_node(args: StackValidationArgs, report: ReportViolation) -> None:
    caddyfile = caddyfile_of(args.resources)
    exposure = (declarations_of(args.resources) or {}).get("exposure")
    node_addresses = {
        attachment.get("ipv4Address")
        for container in containers_in(args.resources)
        if role_of(container.props) == Role.NODE
        for attachment in container.props.get("networksAdvanced") or []
    } - {None}
    for edge in edges_in(args.resources):
        snippet = IDENTITY_SNIPPET.search(caddyfile)
        lines = {line.strip() for line in (snippet.group(1) if snippet else "").splitlines()}
        trusted = NOT_FROM_NODE.search(caddyfile)
        if "request_header -Tailscale-*" in lines:
            continue
        if exposure == TAILNET_NODE and f"request_header @{markers.NOT_FROM_NODE} -Tailscale-*" in lines and trusted:
            if trusted.group(1) not in node_addresses:
                report(
                    f"the edge trusts Tailscale identity headers from {trusted.group(1)}, which is not the node's "
                    f"address {sorted(node_addresses)}",
                    edge.urn,
                )
            continue
        report("the edge lets a client set Tailscale identity headers (Tailscale-*) on some route", edge.urn)
