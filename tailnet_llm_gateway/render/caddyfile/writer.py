"""Writes Caddyfile text with tabs for nesting, and the JSON errors the edge answers with."""

from __future__ import annotations

import json


def json_error(message: str, kind: str, code: int | str) -> str:
    # LiteLLM's error shape, so clients parse the edge's answers like LiteLLM's own.
    error = {"error": {"message": message, "type": kind, "param": None, "code": str(code)}}
    return json.dumps(error, separators=(",", ":"))


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("\t" * self.depth + text) if text else "")

    def open(self, head: str) -> None:
        self.line(f"{head} {{" if head else "{")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.line("}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def action(text: str) -> str:
    return "{{ " + text + " }}"  # spaces inside: `{$` would be a Caddyfile environment variable


def header_any_of(w: Writer, field: str, values: tuple[str, ...]) -> None:
    # One line a value: the Caddyfile's header matcher takes one value, and repeated ones are OR'ed.
    for value in values:
        w.line(f"header {field} {value}")
