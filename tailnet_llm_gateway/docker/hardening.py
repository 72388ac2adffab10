"""The hardening every container of this stack gets, in one place: the single-container rules of the
OWASP Docker Security Cheat Sheet (non-root user, all capabilities dropped, no-new-privileges, read-only
root, memory and process limits, no host namespaces, no sensitive mounts).

Every service container calls `hardened_container_args`; a test asserts each property on each of them.
How its files and secrets reach it is `config_volumes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from policy.gateway_contract import ROLE_LABEL, ROOT_EXCEPTION_LABEL

from ..topology import Resources

LOG_OPTS = {"max-size": "10m", "max-file": "3"}


@dataclass(frozen=True)
class Health:
    """Healthcheck timing. Docker 20.10 has no start_interval: the first probe waits one `interval`, so
    the interval is short enough that `pulumi up` sees a ready container as healthy within seconds."""

    test: list[str]
    interval: str
    timeout: str
    retries: int
    start_period: str


def owned_tmpfs(resources: Resources, size: str) -> str:
    """tmpfs options for a directory the container's own uid writes; a tmpfs is root-owned otherwise."""
    return f"rw,noexec,nosuid,size={size},uid={resources.uid},gid={resources.gid}"


def hardened_container_args(
    role: str,
    resources: Resources,
    tmpfs: dict[str, str],
    health: Health,
    root_because: str | None = None,
    keep_bounding: Sequence[str] = (),
    extra_labels: Sequence[docker.ContainerLabelArgs] = (),
    drain_s: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for docker.Container that make it least-privileged and bounded.

    `drain_s`: when the container is replaced or removed, it is first stopped with SIGTERM and this many
    seconds to finish what it is doing (the provider otherwise removes it at once, cutting every request).

    `root_because` runs the container as uid 0 (still with no capabilities) and records why.
    `keep_bounding` keeps capabilities in the bounding set for an image whose binary carries them as
    file capabilities (it could not be executed otherwise); no-new-privileges keeps them from ever
    becoming effective, so the process still runs with none.
    """
    labels = [docker.ContainerLabelArgs(label=ROLE_LABEL, value=role), *extra_labels]
    if root_because:
        labels.append(docker.ContainerLabelArgs(label=ROOT_EXCEPTION_LABEL, value=root_because))
    return {
        "labels": labels,
        "user": "0:0" if root_because else resources.user,
        # Nothing in the image can be changed at run time; the app writes only to its tmpfs.
        "read_only": True,
        "tmpfs": tmpfs,
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=list(keep_bounding) or None),
        "security_opts": ["no-new-privileges:true"],
        "privileged": False,
        "memory": resources.memory_mb,
        # No swap beyond the memory limit: a leak ends in an OOM restart, not a thrashing host.
        "memory_swap": resources.memory_mb,
        # pulumi-docker 5.2.0 has no pids_limit argument; RLIMIT_NPROC counts every process of the uid on
        # the host, which is why each container has a uid of its own (settings refuse shared ones).
        "ulimits": [docker.ContainerUlimitArgs(name="nproc", soft=resources.pids, hard=resources.pids)],
        "restart": "unless-stopped",
        "log_driver": "json-file",
        "log_opts": LOG_OPTS,
        "healthcheck": docker.ContainerHealthcheckArgs(
            tests=health.test,
            interval=health.interval,
            timeout=health.timeout,
            retries=health.retries,
            start_period=health.start_period,
        ),
        # `pulumi up` fails (instead of reporting success) when the container never gets healthy.
        "wait": True,
        "wait_timeout": 120,
        **({"destroy_grace_seconds": drain_s, "stop_signal": "SIGTERM", "stop_timeout": drain_s} if drain_s else {}),
    }


def container_options(
    parent: pulumi.Resource, image_resource: pulumi.Resource, after: Sequence[pulumi.Resource] = ()
) -> pulumi.ResourceOptions:
    """Options every service container of this stack needs."""
    return pulumi.ResourceOptions(
        parent=parent,
        depends_on=[image_resource, *after],
        # The Docker provider (terraform-provider-docker) neither replaces the container nor updates these in
        # place when they change (kreuzwerker/terraform-provider-docker#988): ask for a replacement.
        replace_on_changes=["healthcheck", "tmpfs"],
        additional_secret_outputs=["envs"],
        # Container names and host ports are unique: the old container must go first.
        delete_before_replace=True,
    )
