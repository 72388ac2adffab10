"""`caddy validate` with the real Caddy binary, for any rendered Caddyfile."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.certs import self_signed_cert
from harness.processes import binary
from tailnet_llm_gateway.topology import CERT_MOUNT


def caddy_validate(caddyfile: str, work: Path, host: str = "gpu-box.tail0a1b2c.ts.net") -> subprocess.CompletedProcess:
    """Validate the file as Caddy would load it; the cert mount is pointed at a throwaway cert."""
    work.mkdir(parents=True, exist_ok=True)
    certs = work / "certs"
    certs.mkdir(exist_ok=True)
    self_signed_cert(certs, host)
    path = work / "Caddyfile"
    path.write_text(caddyfile.replace(CERT_MOUNT + "/", f"{certs}/"))
    return subprocess.run(
        [str(binary("caddy")), "validate", "--config", str(path), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(work), "XDG_DATA_HOME": str(work / "data"), "XDG_CONFIG_HOME": str(work / "config")},
    )
