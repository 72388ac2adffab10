"""Docker networks as pulumi-docker creates, adopts (import), looks up and deletes them."""

from __future__ import annotations

import time
from typing import Any

import docker
from docker.types import IPAMConfig, IPAMPool

from harness.engine.docker_objects import EngineError, Substitutions
from harness.program_run import Registered


def network_lookup(api: docker.APIClient, sub: Substitutions, name: str) -> dict[str, Any] | None:
    """The getNetwork answer for a declared network name, as the provider would give it."""
    try:
        network = api.inspect_network(sub.name(name))
    except docker.errors.NotFound:
        return None
    pools = [{"subnet": c.get("Subnet"), "gateway": c.get("Gateway")} for c in network["IPAM"].get("Config") or []]
    return {"name": name, "id": network["Id"], "driver": network["Driver"], "ipamConfigs": pools}


def create_network(api: docker.APIClient, sub: Substitutions, inputs: dict[str, Any]) -> str:
    ipam = None
    if inputs.get("ipamConfigs"):
        pools = [IPAMPool(subnet=c.get("subnet"), gateway=c.get("gateway")) for c in inputs["ipamConfigs"]]
        ipam = IPAMConfig(pool_configs=pools)
    try:
        created = api.create_network(
            sub.name(inputs["name"]),
            driver=inputs.get("driver"),
            ipam=ipam,
            attachable=inputs.get("attachable"),
            internal=bool(inputs.get("internal")),
            labels=sub.label,
        )
    except docker.errors.APIError as error:
        raise EngineError(f"Unable to create network: {error.explanation}") from None
    return created["Id"]


def adopt_network(api: docker.APIClient, sub: Substitutions, resource: Registered, import_id: str) -> str:
    """An existing network, after checking that its declared inputs match what exists."""
    inputs = resource.inputs
    actual = api.inspect_network(import_id)
    pools = [
        {k: v for k, v in (("subnet", c.get("Subnet")), ("gateway", c.get("Gateway"))) if v}
        for c in actual["IPAM"].get("Config") or []
    ]
    declared_pools = [{k: v for k, v in c.items() if v} for c in inputs.get("ipamConfigs") or []]
    mismatch = {
        "name": (actual["Name"], sub.name(inputs["name"])),
        "driver": (actual["Driver"], inputs.get("driver")),
        "attachable": (actual.get("Attachable", False), bool(inputs.get("attachable"))),
    }
    if declared_pools:
        mismatch["ipamConfigs"] = (pools, declared_pools)
    differs = {k: v for k, v in mismatch.items() if v[0] != v[1]}
    if differs:
        raise EngineError(f"inputs to import do not match the existing resource {resource.name}: {differs}")
    return import_id


def delete_network(api: docker.APIClient, name: str, network_id: str | None, timeout_s: float) -> None:
    """Delete a network, retried while it "has active endpoints" (the provider retries for 30 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            api.remove_network(network_id)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as error:
            if "has active endpoints" not in str(error) or time.monotonic() > deadline:
                raise EngineError(f"network {name} could not be deleted: {error.explanation}") from None
        time.sleep(0.5)
