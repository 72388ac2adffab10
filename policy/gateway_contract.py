"""What the program and the policy pack must agree on, in one module both import.

The pack is deployed on its own (`pulumi preview --policy-pack policy`), so this module uses only the
standard library and lives in the pack's folder; the program imports it as `policy.gateway_contract`.

Labels, facts about the Docker host, and route paths.

Route paths: how Caddy matches and orders `handle` blocks, so the settings check (topology) and the
pack's check of the rendered Caddyfile decide overlaps the same way Caddy does:
- Caddy's path matcher compares case-insensitively, on the decoded and cleaned path; `/foo/*` matches
  every path that starts with `/foo/` (not `/foo` itself), `/foo` matches only `/foo`;
- a site's `handle` blocks with one path each are tried in Caddy's order: the longer path without its
  trailing `*` first; the same path with and without `*`, the one without first; equal lengths, the
  lexically smaller first (caddyconfig/httpcaddyfile, sortRoutes); a block without a matcher last.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from urllib.parse import unquote

# ---- labels the program puts on containers, and the pack reads --------------------------------------

# What a container is for: model-gateway, edge, tailnet-node, config-writer.
ROLE_LABEL = "tailnet-llm-gateway.role"
# A container that must run as root says why in this label (an explicit, reviewable exception).
ROOT_EXCEPTION_LABEL = "tailnet-llm-gateway.runs-as-root-because"
# A config writer names the role of the service it writes for; a service carries its file's sha256.
CONFIG_FOR_LABEL = "tailnet-llm-gateway.config-for"
CONFIG_HASH_LABEL = "tailnet-llm-gateway.config-sha256"
CONFIG_WRITER_ROLE = "config-writer"
# A writer of secret files (the edge's keys): its uploads are the secrets themselves.
KEYS_WRITER_ROLE = "keys-writer"

# ---- facts about the Docker host and the tailnet ------------------------------------------------------

# Tailscale hands out node addresses only from these ranges (CGNAT v4 and its ULA v6 prefix).
TAILSCALE_RANGES = (ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("fd7a:115c:a1e0::/48"))

# Docker 20.10's default address pools: networks created without a subnet get one from these, so a
# subnet pinned inside them collides, sooner or later, with one Docker addressed itself.
DOCKER_DEFAULT_POOLS = tuple(ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)) + (
    ipaddress.ip_network("192.168.0.0/16"),
)
# Images whose main binary carries file capabilities (`setcap ...=+ep`). The kernel refuses to execute
# such a binary when a capability it names is outside the container's bounding set, even for a non-root
# user who will never hold it: these must stay in the bounding set (no-new-privileges keeps them out
# of the effective set).
FILE_CAPABILITY_IMAGES = {"docker.io/library/caddy": ("NET_BIND_SERVICE",)}
# The process limit (nproc) counts every process of a uid on the whole host: uids that host users or
# many images share (nobody, distroless `nonroot`, the first login user) would count theirs too.
SHARED_UIDS = frozenset({65532, 65533, 65534, 65535, 1000})


def canonical_repository(repository: str) -> str:
    """The repository as Docker resolves it: `caddy` is `docker.io/library/caddy` (a tag or digest is cut)."""
    repository = repository.split("@")[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    first, _, rest = repository.partition("/")
    if not rest:
        return f"docker.io/library/{repository}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{repository}"
    return repository


# ---- route paths, as Caddy matches and orders them ---------------------------------------------------

# How much each route auth protects: a route may carve requests out of another only with an auth at
# least as strong for those requests. `bearer` skips SSO, so it is weaker than `sso` for SSO content.
AUTH_STRENGTH = {"none": 0, "bearer": 1, "tailnet": 1, "sso": 2}

# LiteLLM's master key, in its environment; with no named clients, the one client ("master") presents it
# at the edge.
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
MASTER_CLIENT_NAME = "master"
# The header in which the edge tells an API upstream which client is calling (a client's own copy never
# passes the edge).
CLIENT_HEADER = "X-Gateway-Client"
# The edge's own key toward LiteLLM (not the master key): with it, LiteLLM serves only a request that
# names one known client, never the admin.
EDGE_KEY_ENV = "TLG_EDGE_KEY"
# Who the edge's readiness checks are, toward LiteLLM: allowed only the backends' readiness checks. A
# client name never holds a colon, so no client can be named this.
READINESS_CLIENT = "edge:readiness"
# The LiteLLM endpoints an API client needs (as LiteLLM sees them, after the route's prefix is
# stripped): the model list (names only), chat and text completions, embeddings, Anthropic's Messages
# API. Nothing else of LiteLLM is reachable through the edge: not its admin and key management, not
# /v1/model/info (which shows backend addresses), not its pass-through calls to outside providers.
# (/v1/models/{id} is not here: LiteLLM serves it only to users its database knows.)
GATEWAY_API_PATHS = (
    "/v1/models",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/messages/count_tokens",
)


# The edge reads every key it compares or hands on from a file of its own in its keys directory, never from
# its environment: a client added, a key rotated or revoked changes files, not the running edge.
EDGE_KEYS_DIR = "/etc/caddy/keys"
EDGE_KEY_FILE = "edge"
MASTER_KEY_FILE = "master"


def client_key_file(name: str) -> str:
    return f"client-{name}"


@dataclass(frozen=True)
class RoutePath:
    """A route's path matcher as written (`None` for the catch-all), its index and its auth."""

    index: int
    pattern: str | None
    auth: str
    # How messages name it; settings routes by default, the pack names Caddyfile blocks.
    name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name or f'routes[{self.index}]'} ({self.pattern or '/*'}, auth {self.auth})"

    @property
    def is_prefix(self) -> bool:
        return self.pattern is not None and self.pattern.endswith("*")

    @property
    def base(self) -> str:
        """What Caddy compares: decoded, lower-case as Caddy lowers it, without the trailing `*`."""
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
