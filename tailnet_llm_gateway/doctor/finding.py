"""One line of the pre-flight check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "FAIL"]
OK: Status = "ok"
# Holds now, but a later step (a reboot, a prompt) may need something: `pulumi up` can still succeed.
WARN: Status = "warn"
# `pulumi up` would fail.
FAIL: Status = "FAIL"


@dataclass(frozen=True)
class Finding:
    status: Status
    # What was checked, e.g. "docker engine" or "host port 127.0.0.1:11435".
    what: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.what}: {self.detail}"
