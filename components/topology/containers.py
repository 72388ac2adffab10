"""What every container of the stack may use, and the uid it runs as."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import ContainerLimits


@dataclass(frozen=True)
class Limits:
    """What one container may use, and the uid it runs as: one of its own, since the process limit
    (nproc) counts every process of a uid on the host."""

    memory_mb: int
    pids: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"


def limits_of(limits: ContainerLimits) -> Limits:
    return Limits(memory_mb=limits.memory_mb, pids=limits.pids, uid=limits.uid, gid=limits.gid)
