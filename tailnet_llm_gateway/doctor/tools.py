"""What `pulumi up` needs besides the host: the Pulumi CLI, the stack's passphrase, Tailscale credentials."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ..topology import Topology
from .finding import FAIL, OK, WARN, Finding

# The Tailscale provider's credentials: its config keys and the environment variables it reads instead.
API_KEY = ("tailscale:apiKey", "TAILSCALE_API_KEY")
OAUTH = (
    ("tailscale:oauthClientId", "TAILSCALE_OAUTH_CLIENT_ID"),
    ("tailscale:oauthClientSecret", "TAILSCALE_OAUTH_CLIENT_SECRET"),
)


def _stack_document(stack_file: Path) -> dict[str, Any]:
    # The settings were read (and checked) already; this reads the keys Pulumi itself owns.
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    return document if isinstance(document, dict) else {}


def pulumi_cli() -> Finding:
    path = shutil.which("pulumi")
    if path is None:
        return Finding(FAIL, "pulumi CLI", "not on PATH: install it (pulumi.com/docs/install) to run `pulumi up`")
    ran = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60)
    if ran.returncode != 0:
        return Finding(FAIL, "pulumi CLI", f"{path} does not run: {(ran.stderr or ran.stdout).strip()[:200]}")
    return Finding(OK, "pulumi CLI", f"{ran.stdout.strip()} at {path}")


def passphrase(stack_file: Path) -> Finding:
    """A stack on the passphrase provider (this project's default backend) needs it for every `pulumi up`."""
    if "encryptionsalt" not in _stack_document(stack_file):
        return Finding(
            WARN, "stack passphrase", f"{stack_file.name} has no encryptionsalt: run `pulumi stack init` once"
        )
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE") is not None:
        return Finding(OK, "stack passphrase", "PULUMI_CONFIG_PASSPHRASE is set")
    named = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if named:
        if os.access(named, os.R_OK):
            return Finding(OK, "stack passphrase", f"PULUMI_CONFIG_PASSPHRASE_FILE names {named}, readable")
        return Finding(FAIL, "stack passphrase", f"PULUMI_CONFIG_PASSPHRASE_FILE names {named}, which cannot be read")
    return Finding(WARN, "stack passphrase", "not in PULUMI_CONFIG_PASSPHRASE(_FILE): pulumi up will ask for it")


def tailscale_credentials(topology: Topology, stack_file: Path) -> list[Finding]:
    """Needed for the node's auth key (tailnet-node) and for applying the policy (tailnetPolicy.manage)."""
    needs = [
        why
        for why, needed in (
            ("the node's auth key", topology.node is not None),
            ("the tailnet policy", topology.tailnet.manage),
        )
        if needed
    ]
    if not needs:
        return [Finding(OK, "tailscale credentials", "not needed: no node, and the policy is not managed")]
    config = _stack_document(stack_file).get("config") or {}

    def given(key: str, variable: str) -> bool:
        return key in config or bool(os.environ.get(variable))

    if given(*API_KEY) or all(given(*pair) for pair in OAUTH):
        return [Finding(OK, "tailscale credentials", f"set, for {' and '.join(needs)}")]
    return [
        Finding(
            FAIL,
            "tailscale credentials",
            f"none for {' and '.join(needs)}: `pulumi config set --secret tailscale:apiKey ...` (or "
            "tailscale:oauthClientId and tailscale:oauthClientSecret, or TAILSCALE_API_KEY)",
        )
    ]
