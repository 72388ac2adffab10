"""Rules on other tailnet machines: LiteLLM never dials one itself (only the edge's forwarders do), and
the tailnet policy lets the gateway reach the declared machines, on single unprivileged TCP ports, only."""

from __future__ import annotations

from urllib.parse import urlsplit

import json5
import yaml
from gateway_contract import TAILSCALE_RANGES, Role
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import ACL, address_of, declarations_of, rendered_upload

LITELLM_CONFIG = "config.yaml"
# The ports the gateway may be granted on another machine: model servers, never a system service.
LOWEST_PORT = 1024


def _on_the_tailnet(url: str) -> bool:
    address = address_of(urlsplit(url).hostname)
    return address is not None and any(address in network for network in TAILSCALE_RANGES)


def litellm_dials_no_machine_itself(args: StackValidationArgs, report: ReportViolation) -> None:
    try:
        config = yaml.safe_load(rendered_upload(args.resources, Role.GATEWAY, LITELLM_CONFIG)) or {}
    except yaml.YAMLError:
        return  # another rule reports a config that is not YAML
    urls = [
        (e.get("model_name"), (e.get("litellm_params") or {}).get("api_base")) for e in config.get("model_list") or []
    ]
    general = config.get("general_settings") or {}
    urls += [(p.get("path"), p.get("target")) for p in general.get("pass_through_endpoints") or []]
    for name, url in urls:
        if isinstance(url, str) and _on_the_tailnet(url):
            report(
                f"LiteLLM would dial {url} ({name}) on the tailnet itself; it reaches other machines only through "
                "the edge's forwarders, which hold the dial timeout, the health checks and (tailnet-node) the proxy"
            )


def _narrow(spec: str) -> bool:
    proto, _, port = str(spec).partition(":")
    return proto == "tcp" and port.isdigit() and LOWEST_PORT <= int(port) <= 65535


def gateway_granted_model_ports_only(args: StackValidationArgs, report: ReportViolation) -> None:
    declarations = declarations_of(args.resources) or {}
    declared = declarations.get("tailnet") or {}
    names = {n for n in (declared.get("tag"), declared.get("target")) if n}
    machines = set(declarations.get("machines") or {})
    for acl in [r for r in args.resources if r.resource_type == ACL]:
        try:
            policy = json5.loads(acl.props.get("acl") or "")
        except Exception:  # noqa: BLE001 - another rule reports a policy that does not parse
            continue
        for index, grant in enumerate(policy.get("grants") or []):
            if not names & set(grant.get("src") or []):
                continue
            wide = [s for s in grant.get("ip") or ["*"] if not _narrow(s)]
            hosts = [
                d for d in grant.get("dst") or [] if d == "*" or str(d).startswith(("autogroup:", "tag:", "group:"))
            ]
            if wide or hosts or grant.get("app"):
                report(
                    f"grants[{index}] lets the gateway reach {grant.get('dst')} on {grant.get('ip')}: only the "
                    f"declared machines {sorted(machines)}, on single TCP ports {LOWEST_PORT}-65535 (model servers)",
                    acl.urn,
                )
        for index, rule in enumerate(policy.get("acls") or []):
            if names & set(rule.get("src") or []):
                report(f"acls[{index}] lets the gateway reach {rule.get('dst')}; grant it model ports instead", acl.urn)
