"""Topology -> Caddyfile (`render.render_caddyfile`). Pure and deterministic: the same topology gives the same
bytes.

One module a part of the file: writer (indentation, JSON errors), logs, identity (the snippets that strip
identity headers and ask SSO), proxy (reverse_proxy, LiteLLM's replicas), readiness, forwarders, routes
(each route's block, which its auth mode writes: tailnet_llm_gateway/auth/).

What the rendered file guarantees:
- SSO bypasses exist only where the settings declare them (auth `none`, `bearer` or `tailnet`) and for
  the edge's own readiness report; every other path, including the catch-all, runs `forward_auth`, whose
  401 becomes a 302 to the SSO start URL carrying the whole original URL.
- Identity and client-address headers a client sends are dropped on every route before anything else
  runs, so upstreams see only the values the SSO service, the edge or the gateway's node vouched for.
  What the edge vouches for is set on the proxied request itself (`header_up`), after the proxy has
  removed hop-by-hop headers: a client that names a header in its `Connection` header cannot remove it.
  Every upstream gets its own name as Host.
- An API route forwards only its allowed paths; refuses browser requests from origins not listed in
  `corsOrigins` (Origin and Sec-Fetch-Site); takes the client's key from `Authorization: Bearer` (any
  case of the scheme), `x-api-key` or `api-key`, compares it as exact text, and refuses two different
  keys; answers a missing or wrong key with a 401 JSON error itself; fails closed (503) when a key it
  needs is empty at run time; hands LiteLLM the edge's own key and the client's name, never a client's
  key; answers CORS preflights only for the configured origins.
- The readiness report and its checks answer GET (and HEAD) only and forward no query and no body.
- Logs (access and errors) are JSON lines without headers (no key, no cookie) and without the value of
  any query parameter.
- No secret is written: keys are read from the environment at run time.
"""
