"""Rules on the edge's routes: every upstream reachable, every SSO bypass declared, routes resolved as
declared, API routes forwarding only the API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway_contract import API_AUTH, BEARER, NONE, SSO, TAILNET, RoutePath, markers, route_conflicts
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import UPSTREAM, caddyfile_of, containers_in, declarations_of, edges_in, site_blocks


def _asks_sso(body: str) -> bool:
    return f"import {markers.SSO_SNIPPET}" in body or "forward_auth" in body


def upstreams_share_a_network(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources) or {}
    services = declared.get("services") or {}
    # Other tailnet machines (the host's routing or the node's proxy reaches them) and the edge's own
    # loopback listeners (its dialers to them) are no container's.
    elsewhere = {*(declared.get("machines") or {}).values(), "127.0.0.1"}
    for edge in edges_in(args.resources):
        edge_networks = {n.get("name") for n in edge.props.get("networksAdvanced") or []}
        for host in sorted(set(UPSTREAM.findall(caddyfile_of(args.resources))) - elsewhere):
            reachable = set()
            for container in containers_in(args.resources):
                for attachment in container.props.get("networksAdvanced") or []:
                    if host in (attachment.get("aliases") or []) or container.props.get("name") == host:
                        reachable.add(attachment.get("name"))
            if host in services and not any(c.props.get("name") == host for c in containers_in(args.resources)):
                reachable |= set(services[host])
            if not reachable & edge_networks:
                report(
                    f"the Caddyfile names {host}, which shares no network with the edge {sorted(edge_networks)}",
                    edge.urn,
                )


def bypasses_declared(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources)
    routes = (declared or {}).get("routes") or []
    bypass = {r.get("path"): r.get("auth") for r in routes if r.get("auth") in (NONE, *API_AUTH)}
    readiness = (declared or {}).get("readiness") or {}
    for edge in edges_in(args.resources):
        for head, body in site_blocks(caddyfile_of(args.resources)):
            if _asks_sso(body):
                continue
            parts = head.split()
            path = parts[1] if len(parts) > 1 else "/*"
            if _readiness_block(path, body, readiness):
                continue
            if path not in bypass:
                report(f"`{head}` skips SSO but the settings declare no bypass route for {path}", edge.urn)


def _readiness_block(path: str, body: str, readiness: Mapping[str, Any]) -> bool:
    """The edge's own readiness report and its checks: under the declared path, asking only LiteLLM."""
    base = readiness.get("path")
    if not base or not (path == base or path.startswith(base + "/")):
        return False
    return set(UPSTREAM.findall(body)) <= {readiness.get("upstream")}


def _block_auth(body: str) -> str:
    if _asks_sso(body):
        return SSO
    if f"@{markers.TAILNET_CALLER}" in body:
        return TAILNET
    return BEARER if f"@{markers.NO_CLIENT}" in body else NONE


def routes_resolve_as_declared(args: StackValidationArgs, report: ReportViolation) -> None:
    for edge in edges_in(args.resources):
        paths = []
        for index, (head, body) in enumerate(site_blocks(caddyfile_of(args.resources))):
            parts = head.split()
            paths.append(
                RoutePath(index, parts[1] if len(parts) > 1 else None, _block_auth(body), name=f"`{parts[0]}`")
            )
        for _route, problem in route_conflicts(paths):
            report(problem, edge.urn)


def api_bypass_forwards_only_the_api(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources)
    routes = (declared or {}).get("routes") or []
    bearer = [r.get("path") for r in routes if r.get("auth") in API_AUTH and r.get("api", True)]
    for edge in edges_in(args.resources):
        for head, body in site_blocks(caddyfile_of(args.resources)):
            parts = head.split()
            if len(parts) < 2 or parts[1] not in bearer:
                continue
            proxy_at = body.find("reverse_proxy")
            guard = re.search(rf"@({markers.NOT_API}) not path ([^\n]+)", body)
            allowed = guard.group(2).split() if guard else []
            answered = guard and re.search(rf"respond @{guard.group(1)}\b[^\n]* 404", body)
            # The allowed paths must be narrower than everything under the prefix.
            narrow = allowed and not any(p.rstrip("*").rstrip("/") in ("", "*") for p in allowed)
            if not (guard and answered and narrow and guard.start() < proxy_at and answered.start() < proxy_at):
                report(
                    f"`{head}` forwards more than the API: no `not path` guard answering 404 before the proxy", edge.urn
                )
