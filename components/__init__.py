"""tailnet-llm-gateway, in the order data flows through it:

    settings/   typed stack settings, where they come from, how a mistake is told
    topology    the one model: services, networks, routes, the edge, the gateway, who may reach what
    plan        settings -> topology -> checked tailnet policy -> every rendered file
    tailnet/    the tailnet policy: the gateway's entries, the merge into the user's file, the offline check
    render/     pure renderers: topology -> Caddyfile, LiteLLM config, the node's serve config
    docker/     Pulumi components for the Docker host (networks, images, containers)
    tailscale/  Pulumi components for the Tailscale API (the policy)
    stack       GatewayStack: wires one plan into those components

Importing this package does not import Pulumi; only `docker/`, `tailscale/` and `stack` do.
"""
