"""CrossGuard rules for tailnet-llm-gateway stacks. Imported by `__main__.py` and by the tests.

Rules read only what the program registers: container and image inputs, the uploaded Caddyfile, the
tailnet policy, and the declarations the `GatewayStack` component carries (routes, services, the
tailnet audiences). They are meant to catch what a reviewer cannot see in a diff of a stack file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

import json5
from gateway_contract import (
    CLIENT_HEADER,
    CONFIG_FOR_LABEL,
    DOCKER_DEFAULT_POOLS,
    FILE_CAPABILITY_IMAGES,
    KEYS_WRITER_ROLE,
    MASTER_CLIENT_NAME,
    MASTER_KEY_ENV,
    MASTER_KEY_FILE,
    ROLE_LABEL,
    ROOT_EXCEPTION_LABEL,
    SHARED_UIDS,
    TAILSCALE_RANGES,
    RoutePath,
    canonical_repository,
    client_key_file,
    route_conflicts,
)
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
ACL = "tailscale:index/acl:Acl"
TAILNET_KEY = "tailscale:index/tailnetKey:TailnetKey"
GATEWAY_STACK = "tailnet-llm-gateway:index:GatewayStack"
SENSITIVE_EXACT = {"/", "/etc", "/root", "/home", "/usr", "/lib", "/bin", "/sbin", "/var", "/var/lib", "/run"}
SENSITIVE_PREFIXES = ("/proc", "/sys", "/dev", "/boot", "/var/run", "/run/", "/var/lib/docker", "/etc/docker")
RELEASE_TAG = re.compile(r":v?\d+\.\d+\.\d+([.+-][A-Za-z0-9.+-]+)?@sha256:[0-9a-f]{64}$")
KEY_LITERAL = re.compile(r"sk-[A-Za-z0-9_-]{16,}")
UPSTREAM = re.compile(r"^\s*(?:reverse_proxy|forward_auth)\s+([^\s:{}]+):\d+", re.M)
TOO_BROAD = {"*", "autogroup:danger-all"}
NETWORK = "docker:index/network:Network"

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY


# ---- helpers ------------------------------------------------------------------------------------


def _role(props: Mapping[str, Any]) -> str | None:
    return _label(props, ROLE_LABEL)


def _label(props: Mapping[str, Any], name: str) -> str | None:
    for label in props.get("labels") or []:
        if label.get("label") == name:
            return label.get("value")
    return None


def _address(text: str | None):
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def _containers(resources) -> list:
    return [r for r in resources if r.resource_type == CONTAINER]


def _never_started(props: Mapping[str, Any]) -> bool:
    """A container that is created but never runs (a config writer): nothing to guard at run time."""
    return props.get("start") is False and props.get("mustRun") is False and props.get("networkMode") == "none"


def _caddyfile(resources) -> str:
    """The Caddyfile the edge runs: the upload of the config writer that writes for the edge."""
    for container in _containers(resources):
        if _label(container.props, CONFIG_FOR_LABEL) == "edge":
            for upload in container.props.get("uploads") or []:
                if str(upload.get("file", "")).endswith("/Caddyfile"):
                    return upload.get("content") or ""
    return ""


def _site_blocks(caddyfile: str) -> list[tuple[str, str]]:
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


def _declared(resources) -> Mapping[str, Any] | None:
    stacks = [r for r in resources if r.resource_type == GATEWAY_STACK]
    return stacks[0].props if stacks else None


# ---- single-container rules -----------------------------------------------------------------------


def _container_only(validate):
    def run(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type == CONTAINER:
            validate(args.props, report)

    return run


@_container_only
def _no_wildcard_ports(props, report):
    for port in props.get("ports") or []:
        address = _address(port.get("ip"))
        if address is None or address.is_unspecified:
            report(f"port {port.get('external')} is published on {port.get('ip') or 'every interface'!r}")


def _ports_only_on(role: str, allowed, what: str):
    """A rule: the container with this role publishes ports only on addresses `allowed` accepts."""

    @_container_only
    def validate(props, report):
        if _role(props) != role:
            return
        for port in props.get("ports") or []:
            address = _address(port.get("ip"))
            if address is None or not allowed(address):
                report(f"the {role} container publishes {port.get('external')} on {port.get('ip')!r}, not {what}")

    return validate


_gateway_loopback = _ports_only_on("model-gateway", lambda a: a.is_loopback, "loopback")
_edge_tailnet = _ports_only_on("edge", lambda a: any(a in net for net in TAILSCALE_RANGES), "a Tailscale address")


@_container_only
def _no_host_namespaces(props, report):
    if props.get("privileged"):
        report("the container is privileged")
    for field in ("networkMode", "pidMode", "ipcMode", "usernsMode"):
        if str(props.get(field) or "").lower() == "host":
            report(f"{field} is host")


def _host_paths(props) -> Iterable[str]:
    for volume in props.get("volumes") or []:
        if volume.get("hostPath"):
            yield volume.get("hostPath")
    for mount in props.get("mounts") or []:
        if mount.get("type") == "bind" and mount.get("source"):
            yield mount.get("source")
    for device in props.get("devices") or []:
        yield device.get("hostPath") or ""


@_container_only
def _no_sensitive_mounts(props, report):
    for path in _host_paths(props):
        clean = "/" + path.strip("/")
        if "docker.sock" in path or clean in SENSITIVE_EXACT or clean.startswith(SENSITIVE_PREFIXES):
            report(f"the host path {path} is mounted")


@_container_only
def _capabilities_dropped(props, report):
    caps = props.get("capabilities") or {}
    if "ALL" not in [str(c).upper() for c in caps.get("drops") or []]:
        report("capabilities are not dropped (drops must include ALL)")
    extra = [c for c in caps.get("adds") or [] if str(c).upper() not in ("NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE")]
    if extra:
        report(f"capabilities added back: {extra}")


@_container_only
def _no_new_privileges(props, report):
    if not any(
        str(o).replace("=", ":") in ("no-new-privileges", "no-new-privileges:true")
        for o in props.get("securityOpts") or []
    ):
        report("no-new-privileges is not set")


@_container_only
def _read_only_root(props, report):
    if props.get("readOnly") is not True and not _never_started(props):
        report("the root filesystem is writable")


@_container_only
def _no_uploads_into_read_only_root(props, report):
    if props.get("readOnly") is True and props.get("uploads"):
        files = [u.get("file") for u in props.get("uploads") or []]
        report(f"uploads {files} into a read-only root: the provider copies them to / and Docker refuses that copy")


@_container_only
def _file_capabilities_kept(props, report):
    needed = FILE_CAPABILITY_IMAGES.get(canonical_repository(str(props.get("image") or "")), ())
    caps = props.get("capabilities") or {}
    drops = {str(c).upper().removeprefix("CAP_") for c in caps.get("drops") or []}
    adds = {str(c).upper().removeprefix("CAP_") for c in caps.get("adds") or []}
    missing = [c for c in needed if ("ALL" in drops or c in drops) and c not in adds]
    if missing and not _never_started(props):
        report(
            f"the image's binary carries the file capabilities {missing}, which the bounding set drops: "
            "exec fails with 'operation not permitted'"
        )


@_container_only
def _non_root(props, report):
    user = str(props.get("user") or "")
    name = user.split(":")[0]
    if name in ("", "0", "root") and not _label(props, ROOT_EXCEPTION_LABEL):
        report(f"runs as {user or 'the image default (root)'}; set a uid or label {ROOT_EXCEPTION_LABEL}")


@_container_only
def _resource_limits(props, report):
    if not props.get("memory"):
        report("no memory limit")
    nproc = [u for u in props.get("ulimits") or [] if u.get("name") == "nproc" and (u.get("hard") or 0) > 0]
    if not nproc:
        report("no process limit (pulumi-docker has no pids_limit: set the nproc ulimit)")
    uid = str(props.get("user") or "").split(":")[0]
    if nproc and uid.isdigit() and int(uid) in SHARED_UIDS:
        report(f"the process limit counts every process of uid {uid} on the host, which other images and users share")


def _subnet_outside_default_pools(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != NETWORK:
        return
    for config in args.props.get("ipamConfigs") or []:
        try:
            subnet = ipaddress.ip_network(str(config.get("subnet") or ""), strict=False)
        except ValueError:
            continue
        if any(subnet.overlaps(pool) for pool in DOCKER_DEFAULT_POOLS):
            report(
                f"the subnet {subnet} lies in Docker's default address pools; networks Docker addresses "
                "itself will collide with it ('Pool overlaps')"
            )


def _images_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        image = str(args.props.get("image") or "")
    elif args.resource_type == REMOTE_IMAGE:
        image = str(args.props.get("name") or "")
    else:
        return
    if not RELEASE_TAG.search(image):
        report(f"{image!r} is not an exact release tag run by digest (repo:X.Y.Z@sha256:...)")


def _no_secrets_in_files_or_commands(args: StackValidationArgs, report: ReportViolation) -> None:
    # Across containers: a config writer holds the files, the service it writes for holds the secrets.
    secrets = []
    for container in _containers(args.resources):
        for env in container.props.get("envs") or []:
            name, _, value = str(env).partition("=")
            if value and any(word in name.upper() for word in ("KEY", "SECRET", "TOKEN", "PASSWORD")):
                secrets.append(value)
        # A keys writer's uploads are the secrets themselves (the edge reads them from its keys volume).
        if _role(container.props) == KEYS_WRITER_ROLE:
            secrets += [str(u.get("content") or "") for u in container.props.get("uploads") or [] if u.get("content")]
    for container in _containers(args.resources):
        props = container.props
        places = {
            "command": " ".join(map(str, props.get("command") or [])),
            "entrypoint": " ".join(map(str, props.get("entrypoints") or [])),
            "environment": " ".join(map(str, props.get("envs") or [])) if _role(props) == "edge" else "",
        }
        for upload in props.get("uploads") or [] if _role(props) != KEYS_WRITER_ROLE else []:
            places[f"upload {upload.get('file')}"] = str(upload.get("content") or "")
        for label in props.get("labels") or []:
            places[f"label {label.get('label')}"] = str(label.get("value") or "")
        for where, text in places.items():
            if any(secret in text for secret in secrets) or KEY_LITERAL.search(text):
                report(f"a secret value appears in the {where}", container.urn)


@_container_only
def _drained_before_removal(props, report):
    # Without a grace period the provider removes a replaced container at once, cutting every request
    # and stream it carries.
    if _role(props) in ("model-gateway", "edge") and not (props.get("destroyGraceSeconds") or 0) > 0:
        report("a replaced container would be removed at once: set destroy_grace_seconds (the drain bound)")


@_container_only
def _healthcheck(props, report):
    tests = (props.get("healthcheck") or {}).get("tests") or []
    if (not tests or str(tests[0]).upper() == "NONE") and not _never_started(props):
        report("no healthcheck")


@_container_only
def _advisory_restart(props, report):
    if props.get("restart") not in ("unless-stopped", "always") and not _never_started(props):
        report(f"restart is {props.get('restart') or 'no'}; the gateway would stay down after a crash or reboot")


@_container_only
def _advisory_logs(props, report):
    if props.get("logDriver") == "json-file" and not (props.get("logOpts") or {}).get("max-size"):
        report("json-file logs without max-size can fill the disk")


@_container_only
def _advisory_cpu(props, report):
    if not props.get("cpus") and not props.get("cpuShares") and not _never_started(props):
        report("no CPU limit: a runaway request can starve the host (a recommendation)")


# ---- rules across resources -------------------------------------------------------------------------


def _edge(resources):
    return [r for r in _containers(resources) if _role(r.props) == "edge"]


def _upstreams_share_a_network(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = _declared(args.resources) or {}
    services = declared.get("services") or {}
    for edge in _edge(args.resources):
        edge_networks = {n.get("name") for n in edge.props.get("networksAdvanced") or []}
        for host in sorted(set(UPSTREAM.findall(_caddyfile(args.resources)))):
            reachable = set()
            for container in _containers(args.resources):
                for attachment in container.props.get("networksAdvanced") or []:
                    if host in (attachment.get("aliases") or []) or container.props.get("name") == host:
                        reachable.add(attachment.get("name"))
            if host in services and not any(c.props.get("name") == host for c in _containers(args.resources)):
                reachable |= set(services[host])
            if not reachable & edge_networks:
                report(
                    f"the Caddyfile names {host}, which shares no network with the edge {sorted(edge_networks)}",
                    edge.urn,
                )


def _bypasses_declared(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = _declared(args.resources)
    routes = (declared or {}).get("routes") or []
    bypass = {r.get("path"): r.get("auth") for r in routes if r.get("auth") in ("none", "bearer", "tailnet")}
    readiness = (declared or {}).get("readiness") or {}
    for edge in _edge(args.resources):
        for head, body in _site_blocks(_caddyfile(args.resources)):
            if "import sso" in body or "forward_auth" in body:
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
    if "import sso" in body or "forward_auth" in body:
        return "sso"
    if "@tailnet_caller" in body:
        return "tailnet"
    return "bearer" if "@no_client" in body else "none"


def _routes_resolve_as_declared(args: StackValidationArgs, report: ReportViolation) -> None:
    for edge in _edge(args.resources):
        paths = []
        for index, (head, body) in enumerate(_site_blocks(_caddyfile(args.resources))):
            parts = head.split()
            paths.append(
                RoutePath(index, parts[1] if len(parts) > 1 else None, _block_auth(body), name=f"`{parts[0]}`")
            )
        for _route, problem in route_conflicts(paths):
            report(problem, edge.urn)


def _api_bypass_forwards_only_the_api(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = _declared(args.resources)
    bearer = [r.get("path") for r in (declared or {}).get("routes") or [] if r.get("auth") in ("bearer", "tailnet")]
    for edge in _edge(args.resources):
        for head, body in _site_blocks(_caddyfile(args.resources)):
            parts = head.split()
            if len(parts) < 2 or parts[1] not in bearer:
                continue
            proxy_at = body.find("reverse_proxy")
            guard = re.search(r"@(\w+) not path ([^\n]+)", body)
            allowed = guard.group(2).split() if guard else []
            answered = guard and re.search(rf"respond @{guard.group(1)}\b[^\n]* 404", body)
            # The allowed paths must be narrower than everything under the prefix.
            narrow = allowed and not any(p.rstrip("*").rstrip("/") in ("", "*") for p in allowed)
            if not (guard and answered and narrow and guard.start() < proxy_at and answered.start() < proxy_at):
                report(
                    f"`{head}` forwards more than the API: no `not path` guard answering 404 before the proxy", edge.urn
                )


CLIENT_NAMING = re.compile(r"^\s*vars @(\w+) client ([\w-]+)\s*$", re.M)
CLIENT_MATCHER = re.compile(r"^\s*@(\w+) expression `([^`]*)`", re.M)
VARS_PLACEHOLDER = re.compile(r"\{vars\.(key_\w+)\}")
# `vars key_x {file.<dir>/<file>}`: which key file a route reads into which variable.
KEY_FILE_READ = re.compile(r"^\s*vars (key_\w+) \{file\.[^}]*/([^/}]+)\}\s*$", re.M)


def _api_routes_accept_declared_clients(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = _declared(args.resources) or {}
    allowed = {
        r.get("path"): set(r.get("clients") or []) for r in declared.get("routes") or [] if r.get("auth") == "bearer"
    }
    for edge in _edge(args.resources):
        for head, body in _site_blocks(_caddyfile(args.resources)):
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


def _proxy_lines(body: str) -> list[str]:
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


def _api_identity_on_the_proxied_request(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = _declared(args.resources) or {}
    api = [r.get("path") for r in declared.get("routes") or [] if r.get("auth") in ("bearer", "tailnet")]
    caddyfile = _caddyfile(args.resources)
    for edge in _edge(args.resources):
        for line in caddyfile.splitlines():
            stripped = line.strip()
            sets_header = stripped.startswith(("header_up ", "request_header ", "header "))
            handed = [v for v in VARS_PLACEHOLDER.findall(stripped) if v != "key_edge"]
            if sets_header and (handed or MASTER_KEY_ENV in stripped):
                report(f"the edge hands on a key it compares (`{stripped}`); LiteLLM gets the edge's own key", edge.urn)
        for head, body in _site_blocks(caddyfile):
            parts = head.split()
            if len(parts) < 2 or parts[1] not in api:
                continue
            proxy = _proxy_lines(body)
            if f"header_up {CLIENT_HEADER} {{vars.client}}" not in proxy:
                report(
                    f"`{head}` does not name the client on the proxied request (header_up {CLIENT_HEADER})", edge.urn
                )
            if not any(line.startswith(("header_up Authorization ", "header_up -Authorization")) for line in proxy):
                report(f"`{head}` leaves the upstream's Authorization to the client", edge.urn)


NOT_FROM_NODE = re.compile(r"^\s*@not_from_node not remote_ip (\S+)\s*$", re.M)
IDENTITY_SNIPPET = re.compile(r"^\(strip_client_identity\) \{\n(.*?)^\}", re.M | re.S)


def _tailnet_identity_only_from_the_node(args: StackValidationArgs, report: ReportViolation) -> None:
    caddyfile = _caddyfile(args.resources)
    exposure = (_declared(args.resources) or {}).get("exposure")
    node_addresses = {
        attachment.get("ipv4Address")
        for container in _containers(args.resources)
        if _role(container.props) == "tailnet-node"
        for attachment in container.props.get("networksAdvanced") or []
    } - {None}
    for edge in _edge(args.resources):
        snippet = IDENTITY_SNIPPET.search(caddyfile)
        lines = {line.strip() for line in (snippet.group(1) if snippet else "").splitlines()}
        trusted = NOT_FROM_NODE.search(caddyfile)
        if "request_header -Tailscale-*" in lines:
            continue
        if exposure == "tailnet-node" and "request_header @not_from_node -Tailscale-*" in lines and trusted:
            if trusted.group(1) not in node_addresses:
                report(
                    f"the edge trusts Tailscale identity headers from {trusted.group(1)}, which is not the node's "
                    f"address {sorted(node_addresses)}",
                    edge.urn,
                )
            continue
        report("the edge lets a client set Tailscale identity headers (Tailscale-*) on some route", edge.urn)


def _tailnet_policy_tested_and_scoped(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = (_declared(args.resources) or {}).get("tailnet") or {}
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


def _node_mode_loopback_only(args: StackValidationArgs, report: ReportViolation) -> None:
    containers = _containers(args.resources)
    if not any(_role(c.props) == "tailnet-node" for c in containers):
        return
    for container in containers:
        for port in container.props.get("ports") or []:
            address = _address(port.get("ip"))
            if address is None or not address.is_loopback:
                report(
                    f"{container.props.get('name')} publishes {port.get('external')} on {port.get('ip')!r}; "
                    "with its own tailnet node the gateway needs no host port off loopback",
                    container.urn,
                )


def _auth_key_safe(args: StackValidationArgs, report: ReportViolation) -> None:
    declared = _declared(args.resources) or {}
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


def _policy(name: str, description: str, validate, level=MANDATORY) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level)


def _stack_policy(name: str, description: str, validate, level=MANDATORY) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level)


POLICIES = [
    _policy("no-wildcard-host-ports", "No port is published on 0.0.0.0, :: or an empty host IP.", _no_wildcard_ports),
    _policy("gateway-port-loopback-only", "The model gateway's host port binds loopback only.", _gateway_loopback),
    _policy("edge-port-tailnet-only", "The edge publishes ports only on a Tailscale address.", _edge_tailnet),
    _policy(
        "no-privileged-or-host-namespaces",
        "No privileged container, host network, PID, IPC or user namespace.",
        _no_host_namespaces,
    ),
    _policy("no-sensitive-host-mounts", "No Docker socket or sensitive host path is mounted.", _no_sensitive_mounts),
    _policy(
        "capabilities-dropped",
        "All capabilities are dropped (only NET_BIND_SERVICE may be added back).",
        _capabilities_dropped,
    ),
    _policy("no-new-privileges", "Containers set no-new-privileges.", _no_new_privileges),
    _policy("read-only-root", "Containers that run have a read-only root filesystem.", _read_only_root),
    _policy(
        "no-uploads-into-read-only-root",
        "No upload targets a read-only root (Docker refuses the copy; use a config writer).",
        _no_uploads_into_read_only_root,
    ),
    _policy(
        "file-capabilities-kept",
        "An image whose binary carries file capabilities keeps them in the bounding set.",
        _file_capabilities_kept,
    ),
    _policy(
        "subnet-outside-default-pools",
        "A pinned subnet lies outside Docker's default address pools.",
        _subnet_outside_default_pools,
    ),
    _policy("non-root-user", "Containers run as a non-root uid, or carry a documented exception label.", _non_root),
    _policy("resource-limits", "Containers have memory and process limits.", _resource_limits),
    _policy("images-pinned-by-digest", "Images are exact release tags run by digest.", _images_pinned),
    _stack_policy(
        "no-secrets-in-files-or-commands",
        "No secret value in a rendered file, a command, a label or the edge's environment (its keys are files).",
        _no_secrets_in_files_or_commands,
    ),
    _policy("healthcheck-required", "Every container that runs has a healthcheck.", _healthcheck),
    _policy(
        "drained-before-removal",
        "LiteLLM and the edge finish their requests and streams, up to a bound, before they are removed.",
        _drained_before_removal,
    ),
    _stack_policy(
        "edge-upstreams-share-a-network",
        "Every Caddy upstream shares a network with Caddy.",
        _upstreams_share_a_network,
    ),
    _stack_policy(
        "sso-bypasses-declared",
        "Every route that skips SSO is a declared bypass with its own auth mode.",
        _bypasses_declared,
    ),
    _stack_policy(
        "routes-resolve-as-declared",
        "No two site blocks match one request unless Caddy tries the stricter one first and it is not "
        "weaker (paths compared as Caddy does: case-insensitive, decoded).",
        _routes_resolve_as_declared,
    ),
    _stack_policy(
        "api-bypass-forwards-only-the-api",
        "Each API route (bearer or tailnet) forwards only its allowed paths.",
        _api_bypass_forwards_only_the_api,
    ),
    _stack_policy(
        "api-routes-accept-declared-clients",
        "Each bearer route accepts exactly the keys of the clients the settings allow there, each on its own key.",
        _api_routes_accept_declared_clients,
    ),
    _stack_policy(
        "api-identity-on-the-proxied-request",
        "API upstreams learn who is calling from the edge, set on the proxied request (no client header removes "
        "it), with the edge's own credential; the master key never leaves the edge.",
        _api_identity_on_the_proxied_request,
    ),
    _stack_policy(
        "tailnet-identity-only-from-the-node",
        "Tailscale's identity and capability headers count only when the gateway's own node sent them.",
        _tailnet_identity_only_from_the_node,
    ),
    _stack_policy(
        "tailnet-policy-tested-and-scoped",
        "The tailnet policy carries tests and grants the gateway only to the configured audiences.",
        _tailnet_policy_tested_and_scoped,
    ),
    _stack_policy(
        "tailnet-node-loopback-only",
        "With its own tailnet node, no container publishes a port on anything but loopback.",
        _node_mode_loopback_only,
    ),
    _stack_policy(
        "tailnet-node-auth-key-safe",
        "The node's auth key is pre-authorized, carries only the gateway tag, and is single-use "
        "unless the settings say otherwise.",
        _auth_key_safe,
    ),
    _policy("restart-unless-stopped", "Containers restart after crashes and reboots.", _advisory_restart, ADVISORY),
    _policy("log-rotation", "json-file logs are capped.", _advisory_logs, ADVISORY),
    _policy("cpu-limit", "Containers have a CPU limit.", _advisory_cpu, ADVISORY),
]
