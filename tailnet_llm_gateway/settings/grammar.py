"""The grammar of every setting that reaches a rendered file.

A value is accepted only when it is a well-formed instance of what it names (a path, a header name, a
host name, a file name, a fixed answer, ...), so nothing a setting holds can add a Caddyfile directive,
a placeholder (`{...}`, `{$...}`), a line, a YAML key or Python code: renderers write values as they
are, never escaped after the fact. Each check raises ValueError saying what the value should look like;
the settings model turns that into the usual one line naming the setting.
"""

from __future__ import annotations

import ipaddress
import re

# Characters a route path segment may hold besides letters and digits (any script: Caddy compares
# paths decoded, so `/café/*` is a route like any other). No `{}` (placeholders), quotes, `#`, `%`
# (Caddy would match a pattern holding %xx against the raw path), `*` (only as the trailing `/*`),
# `?` or whitespace.
_SEGMENT_PUNCTUATION = frozenset("-._~:@+,=")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_CONTROL_URL = re.compile(r"^https?://(?P<host>[A-Za-z0-9.-]{1,253})(?::(?P<port>[0-9]{1,5}))?/?$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DIRECTORY = re.compile(r"^(?:/[A-Za-z0-9._-]+)+/?$")
_RELATIVE_FILE = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_GROUP = re.compile(r"^group:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TAG = re.compile(r"^tag:[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_AUTOGROUP = re.compile(r"^autogroup:[a-z][a-z-]{0,31}$")
_USER = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$")
# A fixed answer is plain text: no placeholder braces, and nothing that ends or escapes a quoted token.
_NOT_IN_TEXT = frozenset('{}"\\`')


def _segment_ok(segment: str) -> bool:
    return segment not in (".", "..") and all(c.isalnum() or c in _SEGMENT_PUNCTUATION for c in segment)


def request_path(value: str, prefix: bool = True) -> str:
    """An exact path (`/healthz`) or, when `prefix`, a prefix (`/llm/*`); `/*` is the catch-all."""
    shape = "an exact path like /healthz" + (" or a prefix like /llm/*" if prefix else "")
    if not value.startswith("/") or len(value) > 256:
        raise ValueError(f"{value!r} must be {shape}")
    if "%" in value:
        raise ValueError(f"{value!r} holds a percent-encoding; write the path decoded")
    body = value[:-2] if prefix and value.endswith("/*") else value
    segments = body.split("/")[1:]
    # A trailing slash (`/dash/`) is an exact path of its own; an empty segment anywhere else is `//`.
    inner = segments[:-1] if segments and segments[-1] == "" else segments
    if (body and not inner and body != "/") or not all(s and _segment_ok(s) for s in inner):
        raise ValueError(f"{value!r} must be {shape} (letters, digits and -._~:@+,= between slashes)")
    return value


def exact_path(value: str) -> str:
    return request_path(value, prefix=False)


def header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a header name such as X-Forwarded-Email")
    return value


def is_host_name(value: str) -> bool:
    return bool(_HOST_NAME.fullmatch(value))


def host(value: str) -> str:
    """A host name other containers resolve (Docker DNS), or an IP address."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a host name or an IP address")
    return value


def control_url(value: str) -> str:
    """A Tailscale control server's URL: http(s)://host[:port], nothing else (it becomes a command-line flag)."""
    match = _CONTROL_URL.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not a control server URL such as https://headscale.example.com:8080")
    host(match.group("host"))
    if match.group("port") and not 1 <= int(match.group("port")) <= 65535:
        raise ValueError(f"{value!r} has no valid port")
    return value.rstrip("/")


def file_name(value: str) -> str:
    if not _FILE_NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{value!r} must be a file name such as tailnet.key (letters, digits, . _ -)")
    return value


def absolute_directory(value: str) -> str:
    if not _DIRECTORY.fullmatch(value) or any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"{value!r} must be an absolute path on the Docker host, such as /etc/tailscale/certs")
    return value


def relative_file(value: str) -> str:
    """A file inside the repository, relative to Pulumi.yaml."""
    if not _RELATIVE_FILE.fullmatch(value) or any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"{value!r} must be a path inside the repository, relative to Pulumi.yaml")
    return value


def fixed_text(value: str) -> str:
    if not value or len(value) > 200 or not value.isprintable() or any(c in _NOT_IN_TEXT for c in value):
        raise ValueError(
            f'{value!r} must be one line of plain text (up to 200 characters) without {{ }} " \\ or `, '
            "so that it is answered as written and never read as a placeholder"
        )
    return value


def model_name(value: str) -> str:
    if not _MODEL_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a model name such as local-chat or org/model:q4 (letters, digits, ._:/@+-)")
    return value


def stack_name(value: str) -> str:
    if not _STACK_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a stack name (letters, digits, _ . -)")
    return value


def principal(value: str, what: str = "a group:, tag:, user@domain or autogroup:member") -> str:
    """A tailnet user, group or tag as the policy file names them."""
    if any(p.fullmatch(value) for p in (_AUTOGROUP, _GROUP, _TAG, _USER)):
        return value
    raise ValueError(f"{value!r} is not {what}")
