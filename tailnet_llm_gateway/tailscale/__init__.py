"""Pulumi components for the Tailscale API: the tailnet policy (and the host's device tag)."""
