"""Rules on tailnet routes: each asks for its own capability, and the tailnet policy grants it to the
route's audiences and no one else."""

from __future__ import annotations

import json5
from gateway_contract import TAILNET
from gateway_contract import caddyfile as shapes
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import ACL, caddyfile_of, declarations_of, edges_in


def _granted(resources) -> dict[str, set[str]] | None:
    """Capability -> every source the policy grants it to (None: no policy is applied here)."""
    granted: dict[str, set[str]] = {}
    acls = [r for r in resources if r.resource_type == ACL]
    if not acls:
        return None
    for acl in acls:
        try:
            policy = json5.loads(acl.props.get("acl") or "")
        except Exception:  # noqa: BLE001 - another rule reports a policy that does not parse
            continue
        for grant in policy.get("grants") or []:
            for capability in grant.get("app") or {}:
                granted.setdefault(capability, set()).update(grant.get("src") or [])
    return granted


def tailnet_routes_granted_a_capability(args: StackValidationArgs, report: ReportViolation) -> None:
    routes = [r for r in (declarations_of(args.resources) or {}).get("routes") or [] if r.get("auth") == TAILNET]
    if not routes:
        return
    granted = _granted(args.resources)
    blocks = {block.path: block.body for block in shapes.route_blocks(caddyfile_of(args.resources))}
    for edge in edges_in(args.resources):
        for route in routes:
            path, capability, audiences = route.get("path"), route.get("capability"), set(route.get("audiences") or [])
            if not capability or not audiences:
                report(
                    f"the tailnet route {path} has no capability or no audiences: it would let in every caller",
                    edge.urn,
                )
                continue
            checked = shapes.checked_capabilities(blocks.get(path, ""))
            if checked != {capability}:
                report(f"the tailnet route {path} checks {sorted(checked)}, not its capability {capability}", edge.urn)
            if granted is not None and granted.get(capability, set()) != audiences:
                report(
                    f"the tailnet policy grants {capability} to {sorted(granted.get(capability, set()))}; the route "
                    f"{path} is for {sorted(audiences)}",
                    edge.urn,
                )
