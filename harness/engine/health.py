"""What Docker's healthcheck log says about how soon a container was reported healthy once it answered.

How long a service takes to start depends on the host (LiteLLM's imports take 7 s on an idle core and over
20 s beside a busy one); how long Docker takes to notice depends on the declared probe cadence only. The
second is what the program controls: Docker 20.10 has no start_interval, so with a 30 s interval `pulumi up`
waited about a minute for a service that answered after a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Docker keeps the last five probe results (MaxLogEntries in daemon/health.go).
DOCKER_HEALTH_LOG_ENTRIES = 5


def _timestamp(text: str) -> datetime:
    """An RFC 3339 time as Docker writes it (nanoseconds, `Z`), to the microsecond Python keeps."""
    head, _, rest = text.partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits) :] if rest else ""
    zone = "+00:00" if zone in ("Z", "") else zone
    return datetime.fromisoformat(f"{head}.{(digits or '0')[:6]:0<6}{zone}")


def _seconds(nanoseconds: int) -> float:
    return nanoseconds / 1e9


@dataclass(frozen=True)
class HealthReport:
    """One container's healthcheck cadence and probe results, read when Docker first said healthy."""

    interval_s: float
    timeout_s: float
    started_at: datetime
    # (start, end, exit code) of each probe Docker still holds, oldest first.
    probes: tuple[tuple[datetime, datetime, int], ...]

    @classmethod
    def from_inspect(cls, inspect: dict[str, Any]) -> HealthReport:
        declared = inspect["Config"]["Healthcheck"]
        log = inspect["State"]["Health"]["Log"] or []
        return cls(
            interval_s=_seconds(declared["Interval"]),
            timeout_s=_seconds(declared["Timeout"]),
            started_at=_timestamp(inspect["State"]["StartedAt"]),
            probes=tuple((_timestamp(p["Start"]), _timestamp(p["End"]), int(p["ExitCode"])) for p in log),
        )

    def notice_bound_s(self) -> float | None:
        """At most this long passed between the service answering and the probe that found it healthy: the
        time since the failing probe before it (or since the start, when it was the first). None when the
        log no longer holds what came before the first passing probe."""
        for index, (start, _end, code) in enumerate(self.probes):
            if code != 0:
                continue
            if index:
                return (start - self.probes[index - 1][0]).total_seconds()
            if len(self.probes) < DOCKER_HEALTH_LOG_ENTRIES:
                return (start - self.started_at).total_seconds()
            return None
        return None
