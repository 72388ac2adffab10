"""The Caddyfile lines the pack reads, each shape's writer beside its reader.

The renderer writes these lines only through the writers here and the pack reads them only through the
readers here, so the two cannot drift apart: a test writes each shape and reads it back (tests/
test_contract_shapes.py). Writers return one line without its indentation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .identity import CLIENT_HEADER
from .markers import CLIENT_VAR, IDENTITY_SNIPPET, KEY_VAR_PREFIX, NOT_API, NOT_FROM_NODE, SSO_SNIPPET

# ---- a route's block in the site ------------------------------------------------------------------


def route_head(path: str | None, strip_prefix: bool = False) -> str:
    """The opening of a route's block (without its brace); None: the site's bare `handle`, which takes
    what no other block takes."""
    if path is None:
        return "handle"
    return f"handle_path {path}" if strip_prefix else f"handle {path}"


_ROUTE_HEAD = re.compile(r"^handle(_path)?\b.*\{$")


@dataclass(frozen=True)
class RouteBlock:
    head: str
    body: str

    @property
    def path(self) -> str:
        """The path it matches, as written (`/*` for the bare catch-all)."""
        parts = self.head.split()
        return parts[1] if len(parts) > 1 else "/*"

    @property
    def bare(self) -> bool:
        """The site's bare `handle`: no matcher, it takes what no other block takes."""
        return self.head == route_head(None)

    @property
    def proxy_at(self) -> int:
        """Where its first reverse_proxy starts in the body (-1: none)."""
        return self.body.find("reverse_proxy")


def route_blocks(caddyfile: str) -> list[RouteBlock]:
    """Each `handle`/`handle_path` block directly inside a site, in the file's order."""
    blocks: list[RouteBlock] = []
    current: str | None = None
    depth, body = 0, []
    for line in caddyfile.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if current is not None:
                body.append(line)
            continue
        if depth == 1 and current is None and _ROUTE_HEAD.match(stripped):
            current, body = stripped[:-1].strip(), []
        elif current is not None:
            body.append(line)
        depth += stripped.count("{") - stripped.count("}")
        if current is not None and depth == 1:
            blocks.append(RouteBlock(current, "\n".join(body)))
            current = None
    return blocks


# ---- upstreams --------------------------------------------------------------------------------------


def proxy_head(addresses: Iterable[str]) -> str:
    """A reverse_proxy to `host:port` addresses (its block follows)."""
    return "reverse_proxy " + " ".join(addresses)


def forward_auth_head(address: str) -> str:
    return f"forward_auth {address}"


_UPSTREAM = re.compile(r"^\s*(?:reverse_proxy|forward_auth)\s+([^\s:{}]+):\d+", re.M)


def upstream_hosts(text: str) -> set[str]:
    """The host of the first address of every reverse_proxy and forward_auth in `text`."""
    return set(_UPSTREAM.findall(text))


def proxy_lines(body: str) -> list[str]:
    """The lines (stripped) of a block's first `reverse_proxy ... {` sub-block."""
    lines, depth, inside = [], 0, False
    for line in body.splitlines():
        stripped = line.strip()
        if not inside and stripped.startswith("reverse_proxy ") and stripped.endswith("{"):
            inside, depth = True, 0
        if inside:
            depth += stripped.count("{") - stripped.count("}")
            lines.append(stripped)
            if depth == 0:
                break
    return lines


def header_up(name: str, value: str) -> str:
    """A header the edge sets on the proxied request (a value), or removes ("")."""
    return f"header_up {name} {value}" if value else f"header_up -{name}"


# The line that names the calling client to an API upstream, inside its reverse_proxy.
CLIENT_HEADER_UP = header_up(CLIENT_HEADER, f"{{vars.{CLIENT_VAR}}}")


def header_lines(text: str) -> list[str]:
    """Every line (stripped) that sets or removes a header: on the request (`request_header`), on the
    proxied request (`header_up`) or on the response (`header`)."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line.startswith(("header_up ", "request_header ", "header "))]


def sets_authorization(proxy: Iterable[str]) -> bool:
    """The proxied request's Authorization is the edge's to set (a value, or removed)."""
    return any(line.startswith(("header_up Authorization ", "header_up -Authorization")) for line in proxy)


# ---- who a request is from ------------------------------------------------------------------------

IDENTITY_SNIPPET_HEAD = f"({IDENTITY_SNIPPET})"
_IDENTITY_SNIPPET = re.compile(rf"^\({IDENTITY_SNIPPET}\) \{{\n(.*?)^\}}", re.M | re.S)
# Tailscale's identity headers, dropped from every request, or from requests not from the node.
DROP_TAILSCALE = "request_header -Tailscale-*"
DROP_TAILSCALE_UNLESS_NODE = f"request_header @{NOT_FROM_NODE} -Tailscale-*"


def identity_snippet_lines(caddyfile: str) -> set[str]:
    """The lines (stripped) of the snippet every route imports first."""
    found = _IDENTITY_SNIPPET.search(caddyfile)
    return {line.strip() for line in (found.group(1) if found else "").splitlines()}


def not_from_node(address: str) -> str:
    """The site's matcher for requests from anywhere but the gateway's node."""
    return f"@{NOT_FROM_NODE} not remote_ip {address}"


_NOT_FROM_NODE = re.compile(rf"^\s*@{NOT_FROM_NODE} not remote_ip (\S+)\s*$", re.M)


def trusted_node(caddyfile: str) -> str | None:
    """The one address whose Tailscale headers the edge trusts."""
    found = _NOT_FROM_NODE.search(caddyfile)
    return found.group(1) if found else None


IMPORT_SSO = f"import {SSO_SNIPPET}"


def asks_sso(body: str) -> bool:
    return IMPORT_SSO in body or "forward_auth" in body


# ---- keys and the clients they name ---------------------------------------------------------------


def read_key(var: str, keys_dir: str, file_name: str) -> str:
    """Read a key from its file into a request variable (on every request)."""
    return f"vars {var} {{file.{keys_dir}/{file_name}}}"


_KEY_FILE_READ = re.compile(rf"^\s*vars ({KEY_VAR_PREFIX}\w+) \{{file\.[^}}]*/([^/}}]+)\}}\s*$", re.M)


def key_files(body: str) -> dict[str, str]:
    """Variable -> the key file it is read from."""
    return {m.group(1): m.group(2) for m in _KEY_FILE_READ.finditer(body)}


_KEY_VAR = re.compile(rf"\{{vars\.({KEY_VAR_PREFIX}\w+)\}}")


def key_placeholder(var: str) -> str:
    return f"{{vars.{var}}}"


def key_vars(text: str) -> list[str]:
    """The key variables `text` reads."""
    return _KEY_VAR.findall(text)


def key_matcher(matcher: str, expression: str) -> str:
    """A named CEL matcher (a client's key presented, say)."""
    return f"@{matcher} expression `{expression}`"


_KEY_MATCHER = re.compile(r"^\s*@(\w+) expression `([^`]*)`", re.M)


def key_matchers(body: str) -> dict[str, set[str]]:
    """Matcher -> the key variables its expression compares."""
    return {m.group(1): set(key_vars(m.group(2))) for m in _KEY_MATCHER.finditer(body)}


def name_client(matcher: str, client: str) -> str:
    """The client a matching request is from."""
    return f"vars @{matcher} {CLIENT_VAR} {client}"


_CLIENT_NAMING = re.compile(rf"^\s*vars @(\w+) {CLIENT_VAR} ([\w-]+)\s*$", re.M)


def named_clients(body: str) -> dict[str, str]:
    """Matcher -> the client it names (only plain client names; a placeholder is no client)."""
    return {m.group(1): m.group(2) for m in _CLIENT_NAMING.finditer(body)}


# ---- what an API route forwards -------------------------------------------------------------------


def api_paths_guard(paths: Iterable[str]) -> str:
    """The matcher for paths an API route does not forward (answered 404 before the proxy)."""
    return f"@{NOT_API} not path " + " ".join(paths)


def api_paths_refusal(body_json: str) -> str:
    return f"respond @{NOT_API} `{body_json}` 404"


_API_GUARD = re.compile(rf"^\s*@{NOT_API} not path ([^\n]+)$", re.M)
_API_REFUSAL = re.compile(rf"^\s*respond @{NOT_API}\b[^\n]* 404$", re.M)


@dataclass(frozen=True)
class ApiGuard:
    paths: tuple[str, ...]
    # Where the guard and its 404 are in the block: both must come before the proxy.
    guard_at: int
    refusal_at: int


def api_guard(body: str) -> ApiGuard | None:
    guard, refusal = _API_GUARD.search(body), _API_REFUSAL.search(body)
    if guard is None or refusal is None:
        return None
    return ApiGuard(tuple(guard.group(1).split()), guard.start(), refusal.start())


# ---- tailnet capabilities -------------------------------------------------------------------------


def capability_check(capability: str) -> str:
    """A matcher line for a caller whose grants (serve's Tailscale-App-Capabilities, JSON as Go writes it)
    hold `capability`."""
    return "header_regexp Tailscale-App-Capabilities `" + '"' + re.escape(capability) + '":\\s*\\[`'


_CAPABILITY_CHECK = re.compile(r"header_regexp Tailscale-App-Capabilities `\"(.+?)\":\\s\*\\\[`")


def checked_capabilities(body: str) -> set[str]:
    return {re.sub(r"\\(.)", r"\1", c) for c in _CAPABILITY_CHECK.findall(body)}
