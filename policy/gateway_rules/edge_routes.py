"""Rules on the edge's routes: every upstream reachable, every SSO bypass declared, routes resolved as
declared, API routes forwarding only the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway_contract import NONE, SSO, RoutePath, route_conflicts
from gateway_contract import caddyfile as shapes
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import caddyfile_of, containers_in, declarations_of, edges_in


def upstreams_share_a_network(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources) or {}
    services = declared.get("services") or {}
    # Other tailnet machines (the host's routing or the node's proxy reaches them) and the edge's own
    # loopback listeners (its dialers to them) are no container's.
    elsewhere = {*(declared.get("machines") or {}).values(), "127.0.0.1"}
    for edge in edges_in(args.resources):
        edge_networks = {n.get("name") for n in edge.props.get("networksAdvanced") or []}
        for host in sorted(shapes.upstream_hosts(caddyfile_of(args.resources)) - elsewhere):
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


def _declared_auth(args: StackValidationArgs) -> dict[str, str]:
    """Each declared route's path -> its auth mode."""
    routes = (declarations_of(args.resources) or {}).get("routes") or []
    return {r.get("path"): r.get("auth") for r in routes}


def bypasses_declared(args: StackValidationArgs, report: ReportViolation) -> None:
    """A block that does not ask SSO is a declared route of another mode, or the edge's readiness report."""
    declared = declarations_of(args.resources)
    bypass = {path for path, auth in _declared_auth(args).items() if auth != SSO}
    readiness = (declared or {}).get("readiness") or {}
    for edge in edges_in(args.resources):
        for block in shapes.route_blocks(caddyfile_of(args.resources)):
            if shapes.asks_sso(block.body) or _readiness_block(block.path, block.body, readiness):
                continue
            if block.path not in bypass:
                report(f"`{block.head}` skips SSO but the settings declare no bypass route for {block.path}", edge.urn)


def _readiness_block(path: str, body: str, readiness: Mapping[str, Any]) -> bool:
    """The edge's own readiness report and its checks: under the declared path, asking only LiteLLM."""
    base = readiness.get("path")
    if not base or not (path == base or path.startswith(base + "/")):
        return False
    return shapes.upstream_hosts(body) <= {readiness.get("upstream")}


def routes_resolve_as_declared(args: StackValidationArgs, report: ReportViolation) -> None:
    """The blocks as Caddy orders them: a block that asks SSO counts as `sso`, any other as its declared mode
    (an undeclared one as `none`, which bypasses_declared reports)."""
    declared = _declared_auth(args)
    for edge in edges_in(args.resources):
        paths = []
        for index, block in enumerate(shapes.route_blocks(caddyfile_of(args.resources))):
            auth = SSO if shapes.asks_sso(block.body) else declared.get(block.path, NONE)
            pattern = None if block.bare else block.path
            paths.append(RoutePath(index, pattern, auth, name=f"`{block.head.split()[0]}`"))
        for _route, problem in route_conflicts(paths):
            report(problem, edge.urn)


def api_bypass_forwards_only_the_api(args: StackValidationArgs, report: ReportViolation) -> None:
    routes = (declarations_of(args.resources) or {}).get("routes") or []
    api = {r.get("path") for r in routes if r.get("api")}
    for edge in edges_in(args.resources):
        for block in shapes.route_blocks(caddyfile_of(args.resources)):
            if block.bare or block.path not in api:
                continue
            proxy_at = block.proxy_at
            guard = shapes.api_guard(block.body)
            # The allowed paths must be narrower than everything under the prefix.
            narrow = guard and guard.paths and not any(p.rstrip("*").rstrip("/") in ("", "*") for p in guard.paths)
            if not (guard and narrow and guard.guard_at < proxy_at and guard.refusal_at < proxy_at):
                report(
                    f"`{block.head}` forwards more than the API: no `not path` guard answering 404 before the proxy",
                    edge.urn,
                )
