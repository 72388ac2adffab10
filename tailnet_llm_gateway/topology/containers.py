"""What every container of the stack may use, and the uid it runs as."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import ContainerResources


@dataclass(frozen=True)
class Resources:
    """What one container may use, and the uid it runs as: one of its own, since the process limit
    (nproc) counts every process of a uid on the host."""

    memory_mb: int
    pids: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"


def resources_of(settings: ContainerResources) -> Resources:
    return Resources(memory_mb=settings.memory_mb, pids=settings.pids, uid=settings.uid, gid=settings.gid)
