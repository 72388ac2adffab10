"""What `pulumi up` does with a resource already in state, as the engine and pulumi-docker decide it:
create, keep (same), update in place, or replace."""

from __future__ import annotations

from typing import Any

from harness.engine.docker_objects import CONTAINER, DYNAMIC, plain
from harness.program_run import Registered

# What resourceDockerContainerUpdate applies in place; the provider neither updates nor replaces for
# the `ignored` ones (unless `replace_on_changes` names them).
UPDATED_IN_PLACE = {"restart", "maxRetryCount", "cpuShares", "memory", "memorySwap", "cpuSet"}
IGNORED_ON_CHANGE = {
    "healthcheck",
    "tmpfs",
    "wait",
    "waitTimeout",
    "destroyGracefulSeconds",
    "destroyGraceSeconds",
    "start",
    "mustRun",
    "init",
    "attach",
    "logs",
    "rm",
    "removeVolumes",
}


def step(deployed: Any, resource: Registered) -> str:
    """ "create", "same", "update" or "replace" for `resource`, given what state holds for it (None: nothing;
    else its registered resource and whether its create failed, tainted)."""
    if deployed is None:
        return "create"
    if deployed.tainted:
        return "replace"
    old = deployed.resource
    before, after = comparable(old.inputs), comparable(resource.inputs)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    if not changed:
        return "same"
    if resource.type == DYNAMIC:
        return "update"
    if resource.type != CONTAINER:
        return "replace"
    replace_on = set(getattr(resource.opts, "replace_on_changes", None) or [])
    if changed & replace_on or changed - UPDATED_IN_PLACE - IGNORED_ON_CHANGE:
        return "replace"
    return "update" if changed & UPDATED_IN_PLACE else "same"


def comparable(inputs: dict[str, Any]) -> dict[str, Any]:
    return {key: plain(value) for key, value in inputs.items()}
