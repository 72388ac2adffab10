"""Throwaway keys for tests and the benchmark, shaped as the stack's own (`sk-` and random)."""

from __future__ import annotations

import secrets


def new_key() -> str:
    return "sk-" + secrets.token_urlsafe(24)
