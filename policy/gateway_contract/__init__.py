"""What the program and the policy pack must agree on, in one package both import.

The pack is deployed on its own (`pulumi preview --policy-pack policy`), so this package uses only the
standard library and lives in the pack's folder; the program imports it as `policy.gateway_contract`,
the pack as `gateway_contract`.

- labels: container labels and roles;
- exposure: how the edge is exposed on the tailnet;
- host: facts about the Docker host and the tailnet;
- identity: keys, key files, the client header, the endpoints clients may reach;
- routes: auth modes, and route paths as Caddy matches and orders them;
- markers: names the rendered Caddyfile uses that the pack looks for;
- declarations: the typed intent the program hands the pack.
"""

from . import markers
from .declarations import Declarations, ReadinessDeclaration, RouteDeclaration, TailnetDeclaration
from .exposure import HOST_BIND, TAILNET_NODE, Exposure
from .host import DOCKER_DEFAULT_POOLS, FILE_CAPABILITY_IMAGES, SHARED_UIDS, TAILSCALE_RANGES, canonical_repository
from .identity import (
    CLIENT_HEADER,
    EDGE_KEY_ENV,
    EDGE_KEY_FILE,
    EDGE_KEYS_DIR,
    GATEWAY_API_PATHS,
    LITELLM_KEY_HEADERS,
    MASTER_CLIENT_NAME,
    MASTER_KEY_ENV,
    MASTER_KEY_FILE,
    READINESS_CLIENT,
    client_key_file,
)
from .labels import CONFIG_FOR_LABEL, CONFIG_HASH_LABEL, ROLE_LABEL, ROOT_EXCEPTION_LABEL, Role
from .routes import (
    API_AUTH,
    AUTH_STRENGTH,
    BEARER,
    NONE,
    SSO,
    TAILNET,
    Auth,
    RoutePath,
    caddy_before,
    caddy_lower,
    caddy_order,
    overlaps,
    route_conflicts,
    strictly_within,
)

__all__ = [
    "API_AUTH",
    "AUTH_STRENGTH",
    "BEARER",
    "CLIENT_HEADER",
    "CONFIG_FOR_LABEL",
    "CONFIG_HASH_LABEL",
    "DOCKER_DEFAULT_POOLS",
    "EDGE_KEYS_DIR",
    "EDGE_KEY_ENV",
    "EDGE_KEY_FILE",
    "FILE_CAPABILITY_IMAGES",
    "HOST_BIND",
    "GATEWAY_API_PATHS",
    "LITELLM_KEY_HEADERS",
    "MASTER_CLIENT_NAME",
    "MASTER_KEY_ENV",
    "MASTER_KEY_FILE",
    "NONE",
    "READINESS_CLIENT",
    "ROLE_LABEL",
    "ROOT_EXCEPTION_LABEL",
    "SHARED_UIDS",
    "SSO",
    "TAILNET",
    "TAILNET_NODE",
    "TAILSCALE_RANGES",
    "Auth",
    "Declarations",
    "Exposure",
    "ReadinessDeclaration",
    "Role",
    "RouteDeclaration",
    "RoutePath",
    "TailnetDeclaration",
    "caddy_before",
    "caddy_lower",
    "caddy_order",
    "canonical_repository",
    "client_key_file",
    "markers",
    "overlaps",
    "route_conflicts",
    "strictly_within",
]
