"""The real Docker engine for the engine tests: a client, the stand-in images, and cleanup by label.

Under CI (CI=true) the engine must be there: `.ci/run` starts one (scripts/engine). Elsewhere, without an
engine, every engine test is skipped with one line saying how to run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from harness.certs import self_signed_cert
from harness.engine import DEV_HOST, rootfs, standins
from harness.engine.health import HealthReport
from harness.engine.provider import CONTAINER, NETWORK, TEST_LABEL, VOLUME, Engine
from harness.program_run import ProgramRun
from harness.stacks import stack_values
from harness.testnet.build import BuildError
from tests.conftest import cannot_run

# Docker 20.10 has no start_interval: with a 30 s interval `pulumi up` waited about a minute for services that
# answered in seconds. Between answering and being reported healthy: at most one 3 s interval, a probe up to its
# 3 s timeout, and 2 s for a loaded 2-core engine to start the probe.
NOTICED_WITHIN_S = 8.0

HOW_TO_RUN = "no Docker engine answers: run `sudo scripts/engine` (installs and starts one), then the tests again"
INSTALL_BUSYBOX = "run `sudo scripts/engine`, which installs busybox-static, then the tests again"


def _remove_labelled(client: docker.DockerClient) -> None:
    """Whatever an earlier, interrupted test run left behind (only objects carrying the test label)."""
    selector = {"label": [TEST_LABEL]}
    for container in client.api.containers(all=True, filters=selector):
        client.api.remove_container(container["Id"], force=True, v=True)
    for network in client.api.networks(filters=selector):
        client.api.remove_network(network["Id"])
    for volume in client.api.volumes(filters=selector).get("Volumes") or []:
        client.api.remove_volume(volume["Name"], force=True)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except docker.errors.DockerException as error:
        cannot_run(f"{HOW_TO_RUN} ({error})")
    _remove_labelled(client)
    yield client
    _remove_labelled(client)
    client.close()


@pytest.fixture(scope="session")
def stand_in_images(docker_client) -> dict[str, str]:
    """Image id of each stand-in, by the reference the stack pins (built once, then cached)."""
    if not rootfs.BUSYBOX.exists():
        cannot_run(f"the stand-in images are built from {rootfs.BUSYBOX}, which is missing: {INSTALL_BUSYBOX}")
    try:
        return {s.tag: standins.ensure(docker_client, s) for s in standins.STAND_INS}
    except BuildError as error:
        cannot_run(f"the node's stand-in holds tailscale built with Go: {error}")


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory) -> dict[str, Path]:
    """A throwaway certificate for the dev host in a directory, as `tailscale cert` writes it and docs/deploy.md
    says to hand it to Caddy's uid; {"dir", "cert"}."""
    certs = tmp_path_factory.mktemp("certs")
    cert, key_file = self_signed_cert(certs, DEV_HOST)
    certs.chmod(0o755)
    key_file.chmod(0o640)
    uid, gid = map(int, stack_values("dev")["edge"].get("resources", {}).get("user", "61001:61001").split(":"))
    os.chown(key_file, uid, gid)
    return {"dir": certs, "cert": cert}


def assert_reported_healthy_soon_after_answering(reports: dict[str, HealthReport], names) -> None:
    """Docker reported each container healthy within NOTICED_WITHIN_S of it answering, so `pulumi up` waits
    for the service, not for the healthcheck. (How long the service takes to start depends on the host:
    printed, not asserted.)"""
    bounds = {name: reports[name].notice_bound_s() for name in names}
    late = {name: bound for name, bound in bounds.items() if bound is None or bound > NOTICED_WITHIN_S}
    assert not late, (
        f"`pulumi up` would wait on the healthcheck, not the service (seconds from answering to healthy): {late}"
    )


def assert_engine_holds_what_the_program_registers(engine: Engine, run: ProgramRun) -> None:
    """Every network, volume and container the program registers is on the engine, and nothing else."""
    kinds = (CONTAINER, NETWORK, VOLUME)
    created = {(d.resource.type, d.resource.inputs["name"]) for d in engine.state.values() if d.resource.type in kinds}
    registered = {(r.type, r.inputs["name"]) for r in run.resources if r.type in kinds}
    assert created == registered and created, (
        f"the engine holds {sorted(created ^ registered)} beyond or short of what the program registers"
    )
