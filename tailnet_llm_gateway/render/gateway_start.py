"""The launcher LiteLLM's replicas start under (`templates/gateway_start.py`), copied next to its config as it
is: no setting reaches it. Pure."""

from __future__ import annotations

from pathlib import Path

from ..gateway_process import LAUNCHER_FILE

_TEMPLATE = Path(__file__).parent / "templates" / LAUNCHER_FILE


def render_gateway_start() -> str:
    return _TEMPLATE.read_text(encoding="utf-8")
