"""Rules for one container (or network, or image) at a time: ports, namespaces, mounts, capabilities,
user, limits, images, health, drain."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from gateway_contract import (
    DOCKER_DEFAULT_POOLS,
    FILE_CAPABILITY_IMAGES,
    ROOT_EXCEPTION_LABEL,
    SHARED_UIDS,
    TAILSCALE_RANGES,
    Role,
    canonical_repository,
)
from pulumi_policy import ReportViolation, ResourceValidationArgs

from .resources import CONTAINER, NETWORK, REMOTE_IMAGE, address_of, container_only, label_of, never_started, role_of

SENSITIVE_EXACT = {"/", "/etc", "/root", "/home", "/usr", "/lib", "/bin", "/sbin", "/var", "/var/lib", "/run"}
SENSITIVE_PREFIXES = ("/proc", "/sys", "/dev", "/boot", "/var/run", "/run/", "/var/lib/docker", "/etc/docker")
RELEASE_TAG = re.compile(r":v?\d+\.\d+\.\d+([.+-][A-Za-z0-9.+-]+)?@sha256:[0-9a-f]{64}$")


@container_only
def no_wildcard_ports(props, report):
    for port in props.get("ports") or []:
        address = address_of(port.get("ip"))
        if address is None or address.is_unspecified:
            report(f"port {port.get('external')} is published on {port.get('ip') or 'every interface'!r}")


def _ports_only_on(role: str, allowed, what: str):
    """A rule: the container with this role publishes ports only on addresses `allowed` accepts."""

    @container_only
    def validate(props, report):
        if role_of(props) != role:
            return
        for port in props.get("ports") or []:
            address = address_of(port.get("ip"))
            if address is None or not allowed(address):
                report(f"the {role} container publishes {port.get('external')} on {port.get('ip')!r}, not {what}")

    return validate


gateway_loopback = _ports_only_on(Role.GATEWAY, lambda a: a.is_loopback, "loopback")


edge_tailnet = _ports_only_on(Role.EDGE, lambda a: any(a in net for net in TAILSCALE_RANGES), "a Tailscale address")


@container_only
def no_host_namespaces(props, report):
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


@container_only
def no_sensitive_mounts(props, report):
    for path in _host_paths(props):
        clean = "/" + path.strip("/")
        if "docker.sock" in path or clean in SENSITIVE_EXACT or clean.startswith(SENSITIVE_PREFIXES):
            report(f"the host path {path} is mounted")


@container_only
def capabilities_dropped(props, report):
    caps = props.get("capabilities") or {}
    if "ALL" not in [str(c).upper() for c in caps.get("drops") or []]:
        report("capabilities are not dropped (drops must include ALL)")
    extra = [c for c in caps.get("adds") or [] if str(c).upper() not in ("NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE")]
    if extra:
        report(f"capabilities added back: {extra}")


@container_only
def no_new_privileges(props, report):
    if not any(
        str(o).replace("=", ":") in ("no-new-privileges", "no-new-privileges:true")
        for o in props.get("securityOpts") or []
    ):
        report("no-new-privileges is not set")


@container_only
def read_only_root(props, report):
    if props.get("readOnly") is not True and not never_started(props):
        report("the root filesystem is writable")


@container_only
def no_uploads_into_read_only_root(props, report):
    if props.get("readOnly") is True and props.get("uploads"):
        files = [u.get("file") for u in props.get("uploads") or []]
        report(f"uploads {files} into a read-only root: the provider copies them to / and Docker refuses that copy")


@container_only
def file_capabilities_kept(props, report):
    needed = FILE_CAPABILITY_IMAGES.get(canonical_repository(str(props.get("image") or "")), ())
    caps = props.get("capabilities") or {}
    drops = {str(c).upper().removeprefix("CAP_") for c in caps.get("drops") or []}
    adds = {str(c).upper().removeprefix("CAP_") for c in caps.get("adds") or []}
    missing = [c for c in needed if ("ALL" in drops or c in drops) and c not in adds]
    if missing and not never_started(props):
        report(
            f"the image's binary carries the file capabilities {missing}, which the bounding set drops: "
            "exec fails with 'operation not permitted'"
        )


@container_only
def non_root(props, report):
    user = str(props.get("user") or "")
    name = user.split(":")[0]
    if name in ("", "0", "root") and not label_of(props, ROOT_EXCEPTION_LABEL):
        report(f"runs as {user or 'the image default (root)'}; set a uid or label {ROOT_EXCEPTION_LABEL}")


@container_only
def resource_limits(props, report):
    if not props.get("memory"):
        report("no memory limit")
    nproc = [u for u in props.get("ulimits") or [] if u.get("name") == "nproc" and (u.get("hard") or 0) > 0]
    if not nproc:
        report("no process limit (pulumi-docker has no pids_limit: set the nproc ulimit)")
    uid = str(props.get("user") or "").split(":")[0]
    if nproc and uid.isdigit() and int(uid) in SHARED_UIDS:
        report(f"the process limit counts every process of uid {uid} on the host, which other images and users share")


def subnet_outside_default_pools(args: ResourceValidationArgs, report: ReportViolation) -> None:
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


def images_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        image = str(args.props.get("image") or "")
    elif args.resource_type == REMOTE_IMAGE:
        image = str(args.props.get("name") or "")
    else:
        return
    if not RELEASE_TAG.search(image):
        report(f"{image!r} is not an exact release tag run by digest (repo:X.Y.Z@sha256:...)")


@container_only
def drained_before_removal(props, report):
    # Without a grace period the provider removes a replaced container at once, cutting every request
    # and stream it carries.
    if role_of(props) in (Role.GATEWAY, Role.EDGE) and not (props.get("destroyGraceSeconds") or 0) > 0:
        report("a replaced container would be removed at once: set destroy_grace_seconds (the drain bound)")


@container_only
def healthcheck(props, report):
    tests = (props.get("healthcheck") or {}).get("tests") or []
    if (not tests or str(tests[0]).upper() == "NONE") and not never_started(props):
        report("no healthcheck")


@container_only
def advisory_restart(props, report):
    if props.get("restart") not in ("unless-stopped", "always") and not never_started(props):
        report(f"restart is {props.get('restart') or 'no'}; the gateway would stay down after a crash or reboot")


@container_only
def advisory_logs(props, report):
    if props.get("logDriver") == "json-file" and not (props.get("logOpts") or {}).get("max-size"):
        report("json-file logs without max-size can fill the disk")


@container_only
def advisory_cpu(props, report):
    if not props.get("cpus") and not props.get("cpuShares") and not never_started(props):
        report("no CPU limit: a runaway request can starve the host (a recommendation)")
