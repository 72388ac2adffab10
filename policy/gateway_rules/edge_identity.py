"""Rules on who the edge says is calling: each bearer route accepts exactly its clients' keys, the identity
rides on the proxied request, Tailscale's identity headers count only from the node."""

from __future__ import annotations

from gateway_contract import (
    BEARER,
    MASTER_CLIENT_NAME,
    MASTER_KEY_ENV,
    MASTER_KEY_FILE,
    TAILNET_NODE,
    Role,
    client_key_file,
    markers,
)
from gateway_contract import caddyfile as shapes
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import caddyfile_of, containers_in, declarations_of, edges_in, role_of


def api_routes_accept_declared_clients(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources) or {}
    allowed = {
        r.get("path"): set(r.get("clients") or []) for r in declared.get("routes") or [] if r.get("auth") == BEARER
    }
    for edge in edges_in(args.resources):
        for block in shapes.route_blocks(caddyfile_of(args.resources)):
            head, body = block.head, block.body
            named = shapes.named_clients(body)
            if block.path not in allowed:
                if named:
                    report(f"`{head}` names clients {sorted(named.values())} but is no declared bearer route", edge.urn)
                continue
            if set(named.values()) != allowed[block.path]:
                accepted, declared_there = sorted(named.values()), sorted(allowed[block.path])
                report(f"`{head}` accepts the keys of {accepted}; the settings allow {declared_there}", edge.urn)
            expressions = shapes.key_matchers(body)
            files = shapes.key_files(body)
            for matcher, client in named.items():
                own = MASTER_KEY_FILE if client == MASTER_CLIENT_NAME else client_key_file(client)
                compared = {files.get(var) for var in expressions.get(matcher, set())}
                if compared != {own}:
                    report(f"`{head}` names {client} on a key other than its own (the file {own})", edge.urn)


def api_identity_on_the_proxied_request(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources) or {}
    api = {r.get("path") for r in declared.get("routes") or [] if r.get("api")}
    caddyfile = caddyfile_of(args.resources)
    for edge in edges_in(args.resources):
        for line in shapes.header_lines(caddyfile):
            handed = [v for v in shapes.key_vars(line) if v != markers.EDGE_KEY_VAR]
            if handed or MASTER_KEY_ENV in line:
                report(f"the edge hands on a key it compares (`{line}`); LiteLLM gets the edge's own key", edge.urn)
        for block in shapes.route_blocks(caddyfile):
            if block.bare or block.path not in api:
                continue
            proxy = shapes.proxy_lines(block.body)
            if shapes.CLIENT_HEADER_UP not in proxy:
                report(
                    f"`{block.head}` does not name the client on the proxied request ({shapes.CLIENT_HEADER_UP})",
                    edge.urn,
                )
            if not shapes.sets_authorization(proxy):
                report(f"`{block.head}` leaves the upstream's Authorization to the client", edge.urn)


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
        lines = shapes.identity_snippet_lines(caddyfile)
        trusted = shapes.trusted_node(caddyfile)
        if shapes.DROP_TAILSCALE in lines:
            continue
        if exposure == TAILNET_NODE and shapes.DROP_TAILSCALE_UNLESS_NODE in lines and trusted:
            if trusted not in node_addresses:
                report(
                    f"the edge trusts Tailscale identity headers from {trusted}, which is not the node's "
                    f"address {sorted(node_addresses)}",
                    edge.urn,
                )
            continue
        report("the edge lets a client set Tailscale identity headers (Tailscale-*) on some route", edge.urn)
