"""Pulumi components for the Docker host: networks, pinned images, the LiteLLM and Caddy containers and
the gateway's Tailscale node container, with the hardening they share. They take typed parts of the
topology and rendered text from the plan, and only create resources."""
