"""Container image references: the exact release tags this project ships, and how a reference is checked.

No digest is typed into the code: a made-up digest would break every deploy. The program resolves each
tag to its registry digest at deploy time; a user may instead pin `repo:tag@sha256:...` in settings.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from policy.gateway_contract import FILE_CAPABILITY_IMAGES, canonical_repository

# Keep these equal to the pins in requirements-dev.txt: the live tests run the same versions.
CADDY_VERSION = "2.11.7"
# LiteLLM 1.98.1, not the newer 1.106.2: above the advisory floor (1.84.0), passes every live test, and
# costs less on the request path: from 1.105 on, every completion passes through layers this stack does
# not use (native compaction, Rust dispatch, four more ASGI middlewares, usage bookkeeping). The figures
# and the profile are in docs/benchmark.md.
# Recheck with `python -m bench --compare-venv` before moving the pin.
LITELLM_VERSION = "1.98.1"

CADDY_IMAGE = f"docker.io/library/caddy:{CADDY_VERSION}"
# The engine tests run tailscaled, tailscale and containerboot built from this tailscale.com release (as
# the image is: build tags ts_kube,ts_package_container), so the node that is tested is the one deployed.
TAILSCALE_VERSION = "1.102.5"
TAILSCALE_IMAGE = f"docker.io/tailscale/tailscale:v{TAILSCALE_VERSION}"
# The non-root variant runs as `nobody` and keeps its UI outside the package tree (LiteLLM's
# docker/Dockerfile.non_root).
LITELLM_IMAGE = f"ghcr.io/berriai/litellm-non_root:v{LITELLM_VERSION}"

_REFERENCE = re.compile(
    r"^(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# A release tag names a full version (X.Y.Z, optionally v-prefixed or suffixed like -alpine); tags
# such as `latest`, `main-stable`, `2` or `2.11` move, so they are refused.
_RELEASE_TAG = re.compile(r"^v?\d+\.\d+\.\d+([.+-][A-Za-z0-9.+-]+)?$")


class ImageRef(NamedTuple):
    repository: str
    tag: str
    digest: str | None

    @property
    def tagged(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def file_capabilities(self) -> tuple[str, ...]:
        return FILE_CAPABILITY_IMAGES.get(canonical_repository(self.repository), ())

    def pinned(self, digest: str) -> str:
        """The reference a container runs: the tag for readers, the digest for Docker."""
        return f"{self.tagged}@{digest}"


def parse_image(text: str) -> ImageRef:
    """Parse an image reference that must carry an exact release tag; raise ValueError otherwise."""
    match = _REFERENCE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not an image reference")
    tag = match.group("tag")
    # A registry port looks like a tag to the pattern above ("host:5000/repo" has no tag).
    if tag is None:
        raise ValueError(f"{text!r} has no tag; pin an exact release tag such as :{CADDY_VERSION}")
    if not _RELEASE_TAG.fullmatch(tag):
        raise ValueError(f"{text!r} uses the floating tag {tag!r}; pin an exact release tag")
    return ImageRef(match.group("repository"), tag, match.group("digest"))
