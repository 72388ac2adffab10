"""How rendered files and secrets reach a container whose root filesystem stays read-only: each in a
volume of its own, filled by a writer container that is never started (it only holds its uploads), and
secret variables whose whole list is a secret in state."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from policy.gateway_contract import CONFIG_FOR_LABEL, CONFIG_HASH_LABEL, ROLE_LABEL, Role

from ..topology import Resources
from .hardening import LOG_OPTS


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
    owner: Resources,
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
