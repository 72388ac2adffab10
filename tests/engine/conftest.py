"""The real Docker engine for the engine tests: a client, the stand-in images, and cleanup by label.

Under CI (CI=true) the engine must be there: `.ci/run` starts one (scripts/engine). Elsewhere, without an
engine, every engine test is skipped with one line saying how to run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import docker
import pytest

from harness.certs import self_signed_cert
from harness.engine import DEV_HOST, standins
from harness.engine.provider import TEST_LABEL
from harness.stacks import stack_values

# With a long healthcheck interval and no start_interval (Docker 20.10), `pulumi up` waits a minute.
HEALTHY_WITHIN_S = 20.0

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


def cannot_run(reason: str) -> NoReturn:
    """An engine test that cannot run here: one visible skip line on a developer's machine, a failure under
    CI, where the engine tests must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the engine tests must run under CI, but {reason}")
    pytest.skip(reason)


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
    if not standins.BUSYBOX.exists():
        cannot_run(f"the stand-in images are built from {standins.BUSYBOX}, which is missing: {INSTALL_BUSYBOX}")
    return {s.tag: standins.ensure(docker_client, s) for s in standins.STAND_INS}


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory) -> dict[str, Path]:
    """A throwaway certificate for the dev host in a directory, as `tailscale cert` writes it and the README
    says to hand it to Caddy's uid; {"dir", "cert"}."""
    certs = tmp_path_factory.mktemp("certs")
    cert, key_file = self_signed_cert(certs, DEV_HOST)
    certs.chmod(0o755)
    key_file.chmod(0o640)
    uid, gid = map(int, stack_values("dev")["edge"].get("limits", {}).get("user", "61001:61001").split(":"))
    os.chown(key_file, uid, gid)
    return {"dir": certs, "cert": cert}


def assert_healthy_soon(time_to_healthy: dict[str, float], names) -> None:
    """Each container reported healthy within HEALTHY_WITHIN_S of its start."""
    slow = {name: round(time_to_healthy[name], 1) for name in names if time_to_healthy[name] > HEALTHY_WITHIN_S}
    assert not slow, f"`pulumi up` would wait this long (s) for a healthy container: {slow}"
