"""The real Docker engine, driven as the Docker provider would drive it (provider), with local stand-ins
for the pinned images (standins), and the soak that measures operations under load on it (soak)."""

from __future__ import annotations

import secrets

# The dev stack's host-bind names: its tailnet host, and the cert directory it mounts.
DEV_HOST = "gpu-box.tail0a1b2c.ts.net"
DEV_CERT_DIR = "/srv/caddy/certs"


def new_run_id() -> str:
    return secrets.token_hex(6)
