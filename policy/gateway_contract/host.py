"""Facts about the Docker host and the tailnet that the settings check and the pack both apply."""

from __future__ import annotations

import ipaddress

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
