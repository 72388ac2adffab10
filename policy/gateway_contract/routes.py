"""Route paths as Caddy matches and orders them, and the auth modes a route can have.

The settings check (topology) and the pack's check of the rendered Caddyfile decide overlaps the same way
Caddy does:
- Caddy's path matcher compares case-insensitively, on the decoded and cleaned path; `/foo/*` matches
  every path that starts with `/foo/` (not `/foo` itself), `/foo` matches only `/foo`;
- a site's `handle` blocks with one path each are tried in Caddy's order: the longer path without its
  trailing `*` first; the same path with and without `*`, the one without first; equal lengths, the
  lexically smaller first (caddyconfig/httpcaddyfile, sortRoutes); a block without a matcher last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, cmp_to_key
from typing import Literal
from urllib.parse import unquote

# How a route proves who calls it: SSO (a browser session, checked by the SSO service), bearer (an API
# key the edge compares), tailnet (the gateway's node says who and which capability), none (open).
Auth = Literal["sso", "bearer", "tailnet", "none"]
SSO: Auth = "sso"
BEARER: Auth = "bearer"
TAILNET: Auth = "tailnet"
NONE: Auth = "none"
# The auth modes of API routes: they skip SSO and carry a client identity to the upstream.
API_AUTH: tuple[Auth, ...] = (BEARER, TAILNET)
# How much each route auth protects: a route may carve requests out of another only with an auth at
# least as strong for those requests. `bearer` skips SSO, so it is weaker than `sso` for SSO content.
AUTH_STRENGTH: dict[str, int] = {NONE: 0, BEARER: 1, TAILNET: 1, SSO: 2}


@dataclass(frozen=True)
class RoutePath:
    """A route's path matcher as written (`None` for the catch-all), its index and its auth."""

    index: int
    pattern: str | None
    auth: str  # an Auth value
    # How messages name it; settings routes by default, the pack names Caddyfile blocks.
    name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name or f'routes[{self.index}]'} ({self.pattern or '/*'}, auth {self.auth})"

    @property
    def is_prefix(self) -> bool:
        return self.pattern is not None and self.pattern.endswith("*")

    @cached_property
    def base(self) -> str:
        """What Caddy compares: decoded, lower-case as Caddy lowers it, without the trailing `*` (computed
        once: the overlap check compares every pair of routes)."""
        assert self.pattern is not None
        return caddy_lower(unquote(self.pattern.removesuffix("*")))


# Go's strings.ToLower (which Caddy's path matcher applies to both the pattern and the request path) maps
# each code point on its own, by Unicode's simple case mapping. Python's str.lower() uses the full
# mapping, which differs for one code point: U+0130 (İ) lowers to "i" plus a combining dot there, to
# plain "i" in Go. Mapped one code point at a time, Python's final-sigma rule (Σ -> ς at a word's end)
# never applies either, as in Go.
_GO_LOWER_EXCEPTIONS = {"\u0130": "i"}


def caddy_lower(text: str) -> str:
    """`text` lower-cased the way Caddy's path matcher lowers it."""
    return "".join(_GO_LOWER_EXCEPTIONS.get(c) or c.lower() for c in text)


def overlaps(a: RoutePath, b: RoutePath) -> bool:
    """Whether one request path can match both (neither is the catch-all)."""
    if a.is_prefix and b.is_prefix:
        return a.base.startswith(b.base) or b.base.startswith(a.base)
    if a.is_prefix:
        return b.base.startswith(a.base)
    if b.is_prefix:
        return a.base.startswith(b.base)
    return a.base == b.base


def strictly_within(a: RoutePath, b: RoutePath) -> bool:
    """Every path `a` matches, `b` matches too, and `b` matches more."""
    if not b.is_prefix:
        return False
    return a.base.startswith(b.base) and (not a.is_prefix or a.base != b.base)


def caddy_before(a: str, b: str) -> bool:
    """Whether Caddy tries the `handle` block for path `a` before the one for `b` (Go compares lengths
    and text as UTF-8 bytes)."""
    trimmed_a, trimmed_b = a.removesuffix("*").encode(), b.removesuffix("*").encode()
    if trimmed_a == trimmed_b:
        return len(a.encode()) < len(b.encode())
    if len(trimmed_a) == len(trimmed_b):
        return trimmed_a < trimmed_b
    return len(trimmed_a) > len(trimmed_b)


def caddy_order(patterns: Sequence[str | None]) -> list[int]:
    """The indexes of `patterns` in the order Caddy tries them (None, the catch-all, last)."""

    def compare(i: int, j: int) -> int:
        a, b = patterns[i], patterns[j]
        if a is None or b is None:
            return (a is None) - (b is None)
        return -1 if caddy_before(a, b) else (1 if caddy_before(b, a) else 0)

    return sorted(range(len(patterns)), key=cmp_to_key(compare))


def _example(a: RoutePath, b: RoutePath) -> str:
    """A request path both match, to show in a message."""
    deeper = a if len(a.base) >= len(b.base) else b
    return deeper.base + ("x" if deeper.is_prefix else "")


def route_conflicts(routes: Sequence[RoutePath]) -> list[tuple[RoutePath, str]]:
    """Every pair of routes whose matchers can both match one request and that Caddy would not resolve
    the way the settings mean: (the route to fix, what is wrong, naming both). Two overlapping routes are
    fine only when one is strictly more specific, Caddy tries it first, and its auth is not weaker."""
    found = []
    listed = [r for r in routes if r.pattern is not None]  # the catch-all is everything else, by design
    for position, first in enumerate(listed):
        for second in listed[position + 1 :]:
            if not overlaps(first, second):
                continue
            if strictly_within(first, second):
                specific, general = first, second
            elif strictly_within(second, first):
                specific, general = second, first
            else:
                found.append(
                    (
                        second,
                        f"{second.label} and {first.label} match the same requests (e.g. "
                        f"{_example(first, second)}): Caddy compares paths case-insensitively "
                        "and decoded; keep one of them",
                    )
                )
                continue
            assert specific.pattern is not None and general.pattern is not None
            if not caddy_before(specific.pattern, general.pattern):
                found.append(
                    (
                        specific,
                        f"{specific.label} is never reached: {general.label} also matches its "
                        f"requests (e.g. {_example(specific, general)}) and Caddy tries it first",
                    )
                )
            elif AUTH_STRENGTH[specific.auth] < AUTH_STRENGTH[general.auth]:
                found.append(
                    (
                        specific,
                        f"{specific.label} would take requests such as "
                        f"{_example(specific, general)} from {general.label} with a weaker auth",
                    )
                )
    return found
