"""Who may call LiteLLM through the edge, and how the edge proves it: the keys, their files, the header
that names the client, and the endpoints a client may reach."""

from __future__ import annotations

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

# Every header LiteLLM 1.98 takes a key from (its SpecialHeaders, and the pass-through header), in the
# order it prefers them: x-litellm-api-key wins over Authorization. No client's copy of any of them passes
# the edge, and the custom auth refuses a request whose key headers disagree.
LITELLM_KEY_HEADERS = (
    "X-Litellm-Api-Key",
    "Authorization",
    "Api-Key",
    "X-Api-Key",
    "X-Goog-Api-Key",
    "Ocp-Apim-Subscription-Key",
    "Litellm_User_Api_Key",
)


# The edge reads every key it compares or hands on from a file of its own in its keys directory, never from
# its environment: a client added, a key rotated or revoked changes files, not the running edge.
EDGE_KEYS_DIR = "/etc/caddy/keys"
EDGE_KEY_FILE = "edge"
MASTER_KEY_FILE = "master"


def client_key_file(name: str) -> str:
    return f"client-{name}"
