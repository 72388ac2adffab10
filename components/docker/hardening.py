"""The hardening every container of this stack gets, in one place: the single-container rules of the
OWASP Docker Security Cheat Sheet (non-root user, all capabilities dropped, no-new-privileges, read-only
root, memory and process limits, no host namespaces, no sensitive mounts).

Every service container calls `hardened_container_args`; a test asserts each property on each of them.
`rendered_config` puts a rendered file into a container whose root filesystem stays read-only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from policy.gateway_contract import CONFIG_FOR_LABEL, CONFIG_HASH_LABEL, ROLE_LABEL, ROOT_EXCEPTION_LABEL, Role

from ..topology import Limits

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


def owned_tmpfs(limits: Limits, size: str) -> str:
    """tmpfs options for a directory the container's own uid writes; a tmpfs is root-owned otherwise."""
    return f"rw,noexec,nosuid,size={size},uid={limits.uid},gid={limits.gid}"


def hardened_container_args(
    role: str,
    limits: Limits,
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
        "user": "0:0" if root_because else limits.user,
        # Nothing in the image can be changed at run time; the app writes only to its tmpfs.
        "read_only": True,
        "tmpfs": tmpfs,
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=list(keep_bounding) or None),
        "security_opts": ["no-new-privileges:true"],
        "privileged": False,
        "memory": limits.memory_mb,
        # No swap beyond the memory limit: a leak ends in an OOM restart, not a thrashing host.
        "memory_swap": limits.memory_mb,
        # pulumi-docker 5.2.0 has no pids_limit argument; RLIMIT_NPROC counts every process of the uid on
        # the host, which is why each container has a uid of its own (settings refuse shared ones).
        "ulimits": [docker.ContainerUlimitArgs(name="nproc", soft=limits.pids, hard=limits.pids)],
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


def secret_environment(secrets: Mapping[str, pulumi.Input[str]], plain: Mapping[str, str]) -> pulumi.Output[list[str]]:
    """`envs` with secret variables: the whole list is a secret, so state never holds one in plain."""
    names = sorted(secrets)
    return pulumi.Output.secret(
        pulumi.Output.all(*[secrets[n] for n in names]).apply(
            lambda values: (
                [f"{n}={v}" for n, v in zip(names, values, strict=True)]
                + [f"{k}={v}" for k, v in sorted(plain.items())]
            )
        )
    )


@dataclass(frozen=True)
class RenderedConfig:
    """A rendered file in a volume of its own, and what the service needs to use it."""

    mount: docker.ContainerVolumeArgs
    # The content's hash: a service carrying it is replaced whenever the file changes.
    label: docker.ContainerLabelArgs
    writer: docker.Container


@dataclass(frozen=True)
class SecretVolume:
    """Secret files in a volume of their own: the service mounts it; one writer a file holds its upload."""

    mount: docker.ContainerVolumeArgs
    writers: list[docker.Container]


def rendered_config(
    parent: pulumi.Resource,
    resource_name: str,
    volume_name: str,
    directory: str,
    files: Mapping[str, str],
    for_role: str,
    image: pulumi.Input[str],
    image_resource: pulumi.Resource,
    user: str,
    reread: Mapping[str, str] | None = None,
) -> RenderedConfig:
    """Rendered config files (name -> content) for a service whose root filesystem is read-only.

    The Docker provider copies every upload into the container at "/", and Docker refuses any copy into
    a container whose root is read-only. So the file goes to a config writer: a container of the same
    image that is created but never started, with a writable root and no network, which receives the
    upload into a named volume. The service mounts that volume read-only. Uploads force a new writer and
    the content's hash is the `label` a service that reads its files only at start carries, so new content
    rewrites the file and then replaces such a service: it never keeps a stale config. `reread` files are
    written too but left out of the hash: the service reads them again when they change.
    """
    child = pulumi.ResourceOptions(parent=parent)
    volume = docker.Volume(resource_name, name=volume_name, opts=child)
    digest = _digest(files)
    written = {**files, **(reread or {})}
    writer = docker.Container(
        f"{resource_name}-writer",
        name=f"{volume_name}-writer",
        image=image,
        **_writer_args(user),
        labels=[
            docker.ContainerLabelArgs(label=ROLE_LABEL, value=Role.CONFIG_WRITER),
            docker.ContainerLabelArgs(label=CONFIG_FOR_LABEL, value=for_role),
            docker.ContainerLabelArgs(label=CONFIG_HASH_LABEL, value=_digest(written)),
        ],
        volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory)],
        uploads=[
            docker.ContainerUploadArgs(file=f"{directory}/{file_name}", content=content, permissions="0444")
            for file_name, content in sorted(written.items())
        ],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[image_resource], delete_before_replace=True),
    )
    return RenderedConfig(
        mount=docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory, read_only=True),
        label=docker.ContainerLabelArgs(label=CONFIG_HASH_LABEL, value=digest),
        writer=writer,
    )


def secret_files(
    parent: pulumi.Resource,
    resource_name: str,
    volume_name: str,
    directory: str,
    files: Mapping[str, pulumi.Input[str]],
    image: pulumi.Input[str],
    image_resource: pulumi.Resource,
    owner: Limits,
) -> SecretVolume:
    """Secret files (name -> secret content) for a service to read at run time, one secret a file.

    The same writer pattern as `rendered_config`, for secrets: the uploads are Pulumi secrets (encrypted
    in state, shown nowhere), each file belongs to the service's uid alone (0400), and the service mounts
    the volume read-only. Each file has a writer of its own: Docker writes an upload in place, so a file
    being written reads empty for a moment, and a secret added, rotated or removed must rewrite its own
    file only, never the others the service is reading. The service reads them on every use, so it keeps
    running. (A removed secret's file stays in the volume, read by nothing, until the volume goes with the
    stack.)
    """
    child = pulumi.ResourceOptions(parent=parent)
    volume = docker.Volume(resource_name, name=volume_name, opts=child)
    writers = [
        docker.Container(
            f"{resource_name}-writer-{file_name}",
            name=f"{volume_name}-writer-{file_name}",
            image=image,
            **_writer_args(owner.user),
            labels=[docker.ContainerLabelArgs(label=ROLE_LABEL, value=Role.KEYS_WRITER)],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory)],
            uploads=[
                docker.ContainerUploadArgs(
                    file=f"{directory}/{file_name}",
                    content=pulumi.Output.secret(content),
                    permissions="0400",
                    owner=str(owner.uid),
                    group=str(owner.gid),
                )
            ],
            opts=pulumi.ResourceOptions(
                parent=parent,
                depends_on=[image_resource],
                delete_before_replace=True,
                additional_secret_outputs=["uploads"],
            ),
        )
        for file_name, content in sorted(files.items())
    ]
    return SecretVolume(
        mount=docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory, read_only=True),
        writers=writers,
    )


def _writer_args(user: str) -> dict[str, Any]:
    """A writer container: never started, it only holds its uploads in the volume it mounts. If someone
    starts it by hand, it has no network, no capabilities and no way to gain privileges."""
    return {
        "start": False,
        "must_run": False,
        "network_mode": "none",
        "user": user,
        # Writable on purpose: Docker copies uploads only into a container whose root is not read-only.
        "read_only": False,
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        "security_opts": ["no-new-privileges:true"],
        "memory": 64,
        "memory_swap": 64,
        "ulimits": [docker.ContainerUlimitArgs(name="nproc", soft=16, hard=16)],
        "restart": "no",
        "log_driver": "json-file",
        "log_opts": LOG_OPTS,
    }


def _digest(files: Mapping[str, str]) -> str:
    """The sha256 of one file's content (as before there could be several), or of every name and content."""
    if len(files) == 1:
        (content,) = files.values()
        return hashlib.sha256(content.encode()).hexdigest()
    digest = hashlib.sha256()
    for file_name, content in sorted(files.items()):
        digest.update(file_name.encode() + b"\0" + content.encode() + b"\0")
    return digest.hexdigest()


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
