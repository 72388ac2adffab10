"""The pre-flight check (`python -m tailnet_llm_gateway doctor --stack S`): what `pulumi up` will need on
this host, one line each, and whether it holds. It reads the host and changes nothing."""

from __future__ import annotations

from pathlib import Path

from ..plan import Plan
from .finding import FAIL, Finding
from .host import (
    address_on_host,
    certificate_files,
    docker_engine,
    kernel,
    nonlocal_bind,
    published_ports_free,
)
from .tools import passphrase, pulumi_cli, tailscale_credentials

__all__ = ["FAIL", "Finding", "preflight"]


def preflight(plan: Plan, stack_file: Path) -> list[Finding]:
    """Every finding for this stack on this host, in the order `pulumi up` meets them."""
    topology = plan.topology
    findings = [pulumi_cli(), passphrase(stack_file), *tailscale_credentials(topology, stack_file)]
    engine, client = docker_engine()
    findings.append(engine)
    findings.append(kernel(topology))
    if topology.site.tailnet_ip is not None:
        findings.append(address_on_host(topology.site.tailnet_ip))
        findings.append(nonlocal_bind(topology.site.tailnet_ip))
    findings += certificate_files(topology)
    findings += published_ports_free(topology, client)
    return findings
