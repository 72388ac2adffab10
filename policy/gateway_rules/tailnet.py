"""Rules on the tailnet side: the policy is tested and scoped, the node mode publishes nothing off
loopback, the node's auth key is safe."""

from __future__ import annotations

import json5
from gateway_contract import TAILNET_NODE, Role
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import ACL, TAILNET_KEY, address_of, containers_in, declarations_of, role_of

TOO_BROAD = {"*", "autogroup:danger-all"}


def tailnet_policy_tested_and_scoped(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = (declarations_of(args.resources) or {}).get("tailnet") or {}
    # What grants name as the gateway: its tag, or a hosts alias for a host that carries no tag.
    names = {n for n in (declared.get("tag"), declared.get("target")) if n}
    audiences = set(declared.get("audiences") or [])
    for acl in [r for r in args.resources if r.resource_type == ACL]:
        try:
            policy = json5.loads(acl.props.get("acl") or "")
        except Exception:  # noqa: BLE001 - any parse failure is the finding
            report("the tailnet policy is not valid HuJSON", acl.urn)
            continue
        if not policy.get("tests"):
            report("the tailnet policy has no tests", acl.urn)
        rules = [("grants", g, g.get("dst") or []) for g in policy.get("grants") or []]
        rules += [
            ("acls", a, [str(d).rpartition(":")[0] for d in a.get("dst") or []]) for a in policy.get("acls") or []
        ]
        for kind, rule, hosts in rules:
            sources = set(rule.get("src") or [])
            named = sorted(names & set(hosts))
            if named or "*" in hosts:
                if sources & TOO_BROAD:
                    report(
                        f"{kind} lets {sorted(sources & TOO_BROAD)} reach the gateway ({', '.join(named) or '*'})",
                        acl.urn,
                    )
                elif named and not sources <= audiences:
                    report(
                        f"{kind} lets {sorted(sources - audiences)} reach {', '.join(named)}; the settings allow "
                        f"{sorted(audiences)}",
                        acl.urn,
                    )


# The node's one service on the tailnet: serve's HTTPS. Any other port of it (tailscaled's SOCKS5 proxy among
# them) is no tailnet device's business.
NODE_PORTS = {"443", "tcp:443"}


def _ports(kind: str, rule: dict, tag: str) -> list[str]:
    """The ports of `tag` a grant (its `ip`) or an ACL (its destinations) opens."""
    if kind == "grants":
        return [str(p) for p in rule.get("ip") or []] if tag in (rule.get("dst") or []) else []
    return [str(d).rpartition(":")[2] for d in rule.get("dst") or [] if str(d).rpartition(":")[0] == tag]


def node_serves_https_only(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources) or {}
    tag = (declared.get("tailnet") or {}).get("tag")
    if declared.get("exposure") != TAILNET_NODE or not tag:
        return
    for acl in [r for r in args.resources if r.resource_type == ACL]:
        try:
            policy = json5.loads(acl.props.get("acl") or "")
        except Exception:  # noqa: BLE001 - reported by tailnet_policy_tested_and_scoped
            continue
        for kind in ("grants", "acls"):
            for rule in policy.get(kind) or []:
                opened = sorted(set(_ports(kind, rule, tag)) - NODE_PORTS)
                if opened:
                    report(
                        f"{kind} opens {tag} on {', '.join(opened)}: the gateway's node serves only 443 (its "
                        "SOCKS5 proxy would let a device pose as any tailnet user to the edge)",
                        acl.urn,
                    )


def node_mode_loopback_only(args: StackValidationArgs, report: ReportViolation) -> None:
    containers = containers_in(args.resources)
    if not any(role_of(c.props) == Role.NODE for c in containers):
        return
    for container in containers:
        for port in container.props.get("ports") or []:
            address = address_of(port.get("ip"))
            if address is None or not address.is_loopback:
                report(
                    f"{container.props.get('name')} publishes {port.get('external')} on {port.get('ip')!r}; "
                    "with its own tailnet node the gateway needs no host port off loopback",
                    container.urn,
                )


def auth_key_safe(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = declarations_of(args.resources) or {}
    tag = (declared.get("tailnet") or {}).get("tag")
    for key in [r for r in args.resources if r.resource_type == TAILNET_KEY]:
        props = key.props
        if props.get("preauthorized") is not True:
            report("the node's auth key is not pre-authorized", key.urn)
        tags = list(props.get("tags") or [])
        if not tags or (tag and tags != [tag]):
            report(f"the node's auth key carries the tags {tags}, not [{tag}]", key.urn)
        if props.get("reusable") and not declared.get("authKeyReusable"):
            report("the node's auth key is reusable but the settings do not ask for it", key.urn)
