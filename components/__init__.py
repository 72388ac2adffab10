"""tailnet-llm-gateway: settings -> topology -> (renderers, Pulumi components).

Importing this package does not import Pulumi; only the component modules do.
"""
