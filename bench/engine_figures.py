"""On the real Docker engine: how long the dev stack's containers take to become healthy, and how long
the edge answers nothing when a settings change replaces Caddy (or LiteLLM). Applied the way `pulumi up`
would, by the engine tests' harness (tests/engine/provider.py), with the local stand-in images."""

from __future__ import annotations

import asyncio
import copy
import os
import secrets
import tempfile
from pathlib import Path

import docker

from tests.caddy_check import self_signed_cert
from tests.conftest import stack_values
from tests.engine import standins
from tests.engine.conftest import DEV_CERT_DIR, DEV_HOST
from tests.engine.probes import Edge, OutageMeter
from tests.engine.provider import Engine
from tests.program_run import run_program


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
        engine = Engine(client, "bench" + secrets.token_hex(4), host_paths={DEV_CERT_DIR: str(certs)})
        key = "sk-" + secrets.token_urlsafe(24)
        auth = {"Authorization": f"Bearer {key}"}
        values = stack_values("dev")
        try:
            engine.up(run_program(values, secrets={"masterKey": key}, networks=engine.network_lookup))
            first = dict(engine.time_to_healthy)
            address, port = engine.published("tailnet-edge", 8443)
            edge = Edge(DEV_HOST, address, port, str(cert))
            outages = {}
            for what, edit in (
                # An edge-only change (a new Caddyfile), then a LiteLLM-only one (a new config).
                ("caddyfile", lambda v: next(r for r in v["routes"] if r["path"] == "/healthz").update(respond="up")),
                ("litellm_config", lambda v: v["models"]["local-chat"].update(timeout=1700)),
            ):
                values = copy.deepcopy(values)
                edit(values)
                probe = "/llm/v1/models" if what == "litellm_config" else "/healthz"
                with OutageMeter(lambda p=probe: edge.get(p, auth, timeout=2).status_code == 200) as meter:
                    engine.up(run_program(values, secrets={"masterKey": key}, networks=engine.network_lookup))
                outages[what] = meter.longest_s
        finally:
            engine.destroy()
            engine.purge()
            client.close()
    return {"time_to_healthy_s": first, "outage_s": outages}
