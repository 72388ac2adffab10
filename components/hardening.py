"""The hardening every container of this stack gets, in one place (security.md section 1).

Both containers call `hardened_container_args`; a test asserts each property on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_docker as docker

from .settings import ContainerLimits

LOG_OPTS = {"max-size": "10m", "max-file": "3"}
# The policy pack tells the gateway from the edge by this label.
ROLE_LABEL = "tailnet-llm-gateway.role"
# The policy pack accepts uid 0 only with a reason in this label.
ROOT_EXCEPTION_LABEL = "tailnet-llm-gateway.runs-as-root-because"


def hardened_container_args(
    role: str,
    limits: ContainerLimits,
    tmpfs: dict[str, str],
    health_test: list[str],
    start_period: str,
    root_because: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for docker.Container that make it least-privileged and bounded.

    `root_because` runs the container as uid 0 (still with no capabilities) and records why.
    """
    labels = [docker.ContainerLabelArgs(label=ROLE_LABEL, value=role)]
    if root_because:
        labels.append(docker.ContainerLabelArgs(label=ROOT_EXCEPTION_LABEL, value=root_because))
    return {
        "labels": labels,
        "user": "0:0" if root_because else limits.user,
        # Nothing in the image can be changed at run time; the app writes only to its tmpfs.
        "read_only": True,
        "tmpfs": tmpfs,
        # Neither container needs any capability: both listen on unprivileged ports.
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        "security_opts": ["no-new-privileges:true"],
        "privileged": False,
        "memory": limits.memory_mb,
        # No swap beyond the memory limit: a leak ends in an OOM restart, not a thrashing host.
        "memory_swap": limits.memory_mb,
        # pulumi-docker 5.2.0 has no pids_limit argument; RLIMIT_NPROC for the container's own uid is
        # the process limit it can set (counted per uid, hence a uid of its own for each container).
        "ulimits": [docker.ContainerUlimitArgs(name="nproc", soft=limits.pids, hard=limits.pids)],
        "restart": "unless-stopped",
        "log_driver": "json-file",
        "log_opts": LOG_OPTS,
        "healthcheck": docker.ContainerHealthcheckArgs(
            tests=health_test, interval="30s", timeout="10s", retries=3, start_period=start_period
        ),
        # `pulumi up` fails (instead of reporting success) when the container never gets healthy.
        "wait": True,
        "wait_timeout": 180,
    }


def secret_environment(name: str, secret: pulumi.Input[str], plain: Mapping[str, str]) -> pulumi.Output[list[str]]:
    """`envs` with one secret variable: the whole list is a secret, so state never holds it in plain."""
    return pulumi.Output.secret(
        pulumi.Output.concat(f"{name}=", secret).apply(
            lambda secret_env: [secret_env] + [f"{k}={v}" for k, v in sorted(plain.items())]
        )
    )


def rendered_file(
    parent: pulumi.Resource, resource_name: str, volume_name: str, directory: str, file_name: str, content: str
) -> tuple[docker.ContainerVolumeArgs, docker.ContainerUploadArgs]:
    """A rendered config file for a container with a read-only root filesystem.

    Docker refuses uploads into a read-only root filesystem unless the path is a volume mount, so the
    file goes into a named volume of its own. The upload is part of the container's definition
    (ForceNew in the provider): new content means a new container, never a stale config.
    """
    volume = docker.Volume(resource_name, name=volume_name, opts=pulumi.ResourceOptions(parent=parent))
    return (
        docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory),
        docker.ContainerUploadArgs(file=f"{directory}/{file_name}", content=content, permissions="0444"),
    )


def container_options(parent: pulumi.Resource, image_resource: pulumi.Resource) -> pulumi.ResourceOptions:
    """Options every container of this stack needs."""
    return pulumi.ResourceOptions(
        parent=parent,
        depends_on=[image_resource],
        # The provider neither replaces nor updates these in place (reference, pulumi.md 1).
        replace_on_changes=["healthcheck", "tmpfs"],
        additional_secret_outputs=["envs"],
        # Container names and host ports are unique: the old container must go first.
        delete_before_replace=True,
    )
