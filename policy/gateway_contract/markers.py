"""Names the rendered Caddyfile gives its snippets, matchers and variables, which the pack looks for.

The renderer writes them from here and the pack reads them from here, so a rename cannot make a rule
silently stop matching.
"""

from __future__ import annotations

# Snippets every route imports: drop identity headers a client sent; ask the SSO service.
IDENTITY_SNIPPET = "strip_client_identity"
SSO_SNIPPET = "sso"
# Matches requests that do not come from the gateway's node (whose Tailscale-* headers alone count).
NOT_FROM_NODE = "not_from_node"
# API routes: a request no client was named for (refused with 401).
NO_CLIENT = "no_client"
# Tailnet API routes: a caller the node says holds the route's capability.
TAILNET_CALLER = "tailnet_caller"
# API routes: a path outside the ones the route forwards (answered 404 before the proxy).
NOT_API = "not_api"
# The request variable that holds the calling client's name.
CLIENT_VAR = "client"
# Request variables that hold keys read from the edge's key files start with this; the edge's own key
# toward LiteLLM is EDGE_KEY_VAR.
KEY_VAR_PREFIX = "key_"
EDGE_KEY_VAR = KEY_VAR_PREFIX + "edge"
# A bearer route's matcher for one client's key: this prefix and the client's name.
CLIENT_MATCHER_PREFIX = "client_"
# The file name of the edge's config in its config volume.
CADDYFILE = "Caddyfile"
