"""CrossGuard rules for tailnet-llm-gateway stacks. Imported by `__main__.py` and by the tests.

Rules read only what the program registers: container and image inputs, the uploaded Caddyfile, the
tailnet policy, and the declarations the `GatewayStack` component carries (routes, services, the
tailnet audiences). They are meant to catch what a reviewer cannot see in a diff of a stack file.

One module a kind of rule: containers (one container at a time), secret_values, edge_routes and
edge_identity (the rendered Caddyfile), gateway_config (the rendered LiteLLM config), tailnet; resources
holds how they read the registered resources.
This module registers them.
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from .containers import (
    advisory_cpu,
    advisory_logs,
    advisory_restart,
    capabilities_dropped,
    drained_before_removal,
    edge_tailnet,
    file_capabilities_kept,
    gateway_loopback,
    healthcheck,
    images_pinned,
    no_host_namespaces,
    no_new_privileges,
    no_sensitive_mounts,
    no_uploads_into_read_only_root,
    no_wildcard_ports,
    non_root,
    read_only_root,
    resource_limits,
    subnet_outside_default_pools,
)
from .edge_identity import (
    api_identity_on_the_proxied_request,
    api_routes_accept_declared_clients,
    tailnet_identity_only_from_the_node,
)
from .edge_routes import (
    api_bypass_forwards_only_the_api,
    bypasses_declared,
    routes_resolve_as_declared,
    upstreams_share_a_network,
)
from .gateway_config import metrics_behind_the_master_key
from .remote_machines import gateway_granted_model_ports_only, litellm_dials_no_machine_itself
from .secret_values import no_secrets_in_files_or_commands
from .tailnet import auth_key_safe, node_mode_loopback_only, node_serves_https_only, tailnet_policy_tested_and_scoped
from .tailnet_routes import tailnet_routes_granted_a_capability

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY


def _policy(name: str, description: str, validate, level=MANDATORY) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level)


def _stack_policy(name: str, description: str, validate, level=MANDATORY) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level)


POLICIES = [
    _policy("no-wildcard-host-ports", "No port is published on 0.0.0.0, :: or an empty host IP.", no_wildcard_ports),
    _policy("gateway-port-loopback-only", "The model gateway's host port binds loopback only.", gateway_loopback),
    _policy("edge-port-tailnet-only", "The edge publishes ports only on a Tailscale address.", edge_tailnet),
    _policy(
        "no-privileged-or-host-namespaces",
        "No privileged container, host network, PID, IPC or user namespace.",
        no_host_namespaces,
    ),
    _policy("no-sensitive-host-mounts", "No Docker socket or sensitive host path is mounted.", no_sensitive_mounts),
    _policy(
        "capabilities-dropped",
        "All capabilities are dropped (only NET_BIND_SERVICE may be added back).",
        capabilities_dropped,
    ),
    _policy("no-new-privileges", "Containers set no-new-privileges.", no_new_privileges),
    _policy("read-only-root", "Containers that run have a read-only root filesystem.", read_only_root),
    _policy(
        "no-uploads-into-read-only-root",
        "No upload targets a read-only root (Docker refuses the copy; use a config writer).",
        no_uploads_into_read_only_root,
    ),
    _policy(
        "file-capabilities-kept",
        "An image whose binary carries file capabilities keeps them in the bounding set.",
        file_capabilities_kept,
    ),
    _policy(
        "subnet-outside-default-pools",
        "A pinned subnet lies outside Docker's default address pools.",
        subnet_outside_default_pools,
    ),
    _policy("non-root-user", "Containers run as a non-root uid, or carry a documented exception label.", non_root),
    _policy("resource-limits", "Containers have memory and process limits.", resource_limits),
    _policy("images-pinned-by-digest", "Images are exact release tags run by digest.", images_pinned),
    _stack_policy(
        "no-secrets-in-files-or-commands",
        "No secret value in a rendered file, a command, a label or the edge's environment (its keys are files).",
        no_secrets_in_files_or_commands,
    ),
    _stack_policy(
        "gateway-metrics-behind-the-master-key",
        "LiteLLM serves its Prometheus metrics only to the master key.",
        metrics_behind_the_master_key,
    ),
    _stack_policy(
        "gateway-reaches-other-machines-through-the-edge",
        "LiteLLM never dials a tailnet address itself: the edge's forwarders reach other machines for it.",
        litellm_dials_no_machine_itself,
    ),
    _stack_policy(
        "gateway-granted-model-ports-only",
        "The tailnet policy lets the gateway reach the declared machines on single TCP ports 1024-65535 only.",
        gateway_granted_model_ports_only,
    ),
    _stack_policy(
        "tailnet-routes-granted-a-capability",
        "Each tailnet route checks its own capability, which the tailnet policy grants to its audiences only.",
        tailnet_routes_granted_a_capability,
    ),
    _policy("healthcheck-required", "Every container that runs has a healthcheck.", healthcheck),
    _policy(
        "drained-before-removal",
        "LiteLLM and the edge finish their requests and streams, up to a bound, before they are removed.",
        drained_before_removal,
    ),
    _stack_policy(
        "edge-upstreams-share-a-network",
        "Every Caddy upstream shares a network with Caddy.",
        upstreams_share_a_network,
    ),
    _stack_policy(
        "sso-bypasses-declared",
        "Every route that skips SSO is a declared bypass with its own auth mode.",
        bypasses_declared,
    ),
    _stack_policy(
        "routes-resolve-as-declared",
        "No two site blocks match one request unless Caddy tries the stricter one first and it is not "
        "weaker (paths compared as Caddy does: case-insensitive, decoded).",
        routes_resolve_as_declared,
    ),
    _stack_policy(
        "api-bypass-forwards-only-the-api",
        "Each API route (bearer or tailnet) forwards only its allowed paths.",
        api_bypass_forwards_only_the_api,
    ),
    _stack_policy(
        "api-routes-accept-declared-clients",
        "Each bearer route accepts exactly the keys of the clients the settings allow there, each on its own key.",
        api_routes_accept_declared_clients,
    ),
    _stack_policy(
        "api-identity-on-the-proxied-request",
        "API upstreams learn who is calling from the edge, set on the proxied request (no client header removes "
        "it), with the edge's own credential; the master key never leaves the edge.",
        api_identity_on_the_proxied_request,
    ),
    _stack_policy(
        "tailnet-identity-only-from-the-node",
        "Tailscale's identity and capability headers count only when the gateway's own node sent them.",
        tailnet_identity_only_from_the_node,
    ),
    _stack_policy(
        "tailnet-policy-tested-and-scoped",
        "The tailnet policy carries tests and grants the gateway only to the configured audiences.",
        tailnet_policy_tested_and_scoped,
    ),
    _stack_policy(
        "tailnet-node-serves-https-only",
        "No rule of the tailnet policy opens a port of the gateway's own node other than 443.",
        node_serves_https_only,
    ),
    _stack_policy(
        "tailnet-node-loopback-only",
        "With its own tailnet node, no container publishes a port on anything but loopback.",
        node_mode_loopback_only,
    ),
    _stack_policy(
        "tailnet-node-auth-key-safe",
        "The node's auth key is pre-authorized, carries only the gateway tag, and is single-use "
        "unless the settings say otherwise.",
        auth_key_safe,
    ),
    _policy("restart-unless-stopped", "Containers restart after crashes and reboots.", advisory_restart, ADVISORY),
    _policy("log-rotation", "json-file logs are capped.", advisory_logs, ADVISORY),
    _policy("cpu-limit", "Containers have a CPU limit.", advisory_cpu, ADVISORY),
]
