"""How the rules read what the program registers: resource types, container labels, the edge's
Caddyfile (the upload of the config writer that writes for the edge; gateway_contract.caddyfile reads its
lines), and the
declarations the GatewayStack component carries."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, cast

from gateway_contract import CONFIG_FOR_LABEL, ROLE_LABEL, Declarations, Role, markers
from pulumi_policy import ReportViolation, ResourceValidationArgs

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
ACL = "tailscale:index/acl:Acl"
TAILNET_KEY = "tailscale:index/tailnetKey:TailnetKey"
GATEWAY_STACK = "tailnet-llm-gateway:index:GatewayStack"
NETWORK = "docker:index/network:Network"


def role_of(props: Mapping[str, Any]) -> str | None:
    return label_of(props, ROLE_LABEL)


def label_of(props: Mapping[str, Any], name: str) -> str | None:
    for label in props.get("labels") or []:
        if label.get("label") == name:
            return label.get("value")
    return None


def address_of(text: str | None):
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def containers_in(resources) -> list:
    return [r for r in resources if r.resource_type == CONTAINER]


def never_started(props: Mapping[str, Any]) -> bool:
    """A container that is created but never runs (a config writer): nothing to guard at run time."""
    return props.get("start") is False and props.get("mustRun") is False and props.get("networkMode") == "none"


def rendered_upload(resources, role: str, file_name: str) -> str:
    """A file a service runs with: the upload, named `file_name`, of the config writer that writes for it."""
    for container in containers_in(resources):
        if label_of(container.props, CONFIG_FOR_LABEL) == role:
            for upload in container.props.get("uploads") or []:
                if str(upload.get("file", "")).endswith("/" + file_name):
                    return upload.get("content") or ""
    return ""


def caddyfile_of(resources) -> str:
    """The Caddyfile the edge runs."""
    return rendered_upload(resources, Role.EDGE, markers.CADDYFILE)


def declarations_of(resources) -> Declarations | None:
    """What the settings declare (the GatewayStack component's inputs), when the stack has the component."""
    stacks = [r for r in resources if r.resource_type == GATEWAY_STACK]
    return cast(Declarations, stacks[0].props) if stacks else None


def container_only(validate):
    def run(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type == CONTAINER:
            validate(args.props, report)

    return run


def edges_in(resources):
    return [r for r in containers_in(resources) if role_of(r.props) == Role.EDGE]
