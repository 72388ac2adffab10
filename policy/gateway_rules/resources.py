"""How the rules read what the program registers: resource types, container labels, the edge's
Caddyfile (the upload of the config writer that writes for the edge) and its site blocks, and the
declarations the GatewayStack component carries."""

from __future__ import annotations

import ipaddress
import re
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
UPSTREAM = re.compile(r"^\s*(?:reverse_proxy|forward_auth)\s+([^\s:{}]+):\d+", re.M)


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


def site_blocks(caddyfile: str) -> list[tuple[str, str]]:
    """(opening line, body) of each `handle`/`handle_path` block directly inside a site."""
    blocks, current, depth, body = [], None, 0, []
    for line in caddyfile.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if current is not None:
                body.append(line)
            continue
        if depth == 1 and current is None and re.match(r"^handle(_path)?\b.*\{$", stripped):
            current, body = stripped[:-1].strip(), []
        elif current is not None:
            body.append(line)
        depth += stripped.count("{") - stripped.count("}")
        if current is not None and depth == 1:
            blocks.append((current, "\n".join(body)))
            current = None
    return blocks


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


def proxy_lines(body: str) -> list[str]:
    """The lines inside a block's `reverse_proxy ... {` sub-block."""
    lines, depth, inside = [], 0, False
    for line in body.splitlines():
        stripped = line.strip()
        if not inside and stripped.startswith("reverse_proxy ") and stripped.endswith("{"):
            inside, depth = True, 0
        if inside:
            depth += stripped.count("{") - stripped.count("}")
            lines.append(stripped)
            if depth == 0:
                break
    return lines
