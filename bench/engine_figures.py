"""On the real Docker engine: how long the stack's containers take to become healthy, and what each
operator's change costs under load (the soak, tests/engine/soak.py): failed requests, cut streams and the
worst latency per operation, with the default two LiteLLM replicas and, for the gateway changes, with one.
Applied the way `pulumi up` would, by the engine tests' harness, with the local stand-in images."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from pathlib import Path

import docker

from harness.certs import self_signed_cert
from harness.engine import DEV_HOST, standins
from harness.engine.soak import can_restart_dockerd, soak

# The changes whose cost depends on how many LiteLLM replicas there are.
GATEWAY_CHANGES = ("change a model's backends", "change a LiteLLM timeout")


def measure() -> dict:
    asyncio.set_event_loop(asyncio.new_event_loop())  # run_program (the Pulumi SDK) needs one
    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except docker.errors.DockerException as error:
        return {"skipped": f"no Docker engine answers ({error.__class__.__name__}); `sudo scripts/engine` starts one"}
    for stand_in in standins.STAND_INS:
        standins.ensure(client, stand_in)
    with tempfile.TemporaryDirectory() as tmp:
        certs = Path(tmp)
        cert, key_file = self_signed_cert(certs, DEV_HOST)
        certs.chmod(0o755)
        key_file.chmod(0o640)
        os.chown(key_file, 61001, 61001)
        dirs = {"dir": certs, "cert": cert}
        try:
            two = soak(client, dirs, dockerd=can_restart_dockerd())
            one = soak(client, dirs, replicas=1, dockerd=False, only=GATEWAY_CHANGES)
        finally:
            client.close()
    return {
        "time_to_healthy_s": two.time_to_healthy,
        "soak": [dataclasses.asdict(w) for w in two.windows],
        "soak_one_replica": [dataclasses.asdict(w) for w in one.windows],
    }
