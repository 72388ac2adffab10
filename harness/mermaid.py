"""Mermaid's own parser (the npm package GitHub's renderer uses, run by node), for the diagram tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

PARSER = Path(__file__).resolve().parent / "mermaid_parser" / "parse.mjs"


def mermaid_parse(diagram: str) -> dict:
    """{"ok": True, "type": ...} when Mermaid parses the diagram (without its Markdown fence), else the error."""
    ran = subprocess.run(
        ["node", str(PARSER)], input=diagram, capture_output=True, text=True, timeout=60, cwd=PARSER.parent
    )
    if not ran.stdout.strip():
        raise RuntimeError(f"Mermaid's parser did not run (scripts/test installs it): {ran.stderr[-500:]}")
    return json.loads(ran.stdout)
