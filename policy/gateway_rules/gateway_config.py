"""Rules on the LiteLLM config the gateway runs (the upload of its config writer)."""

from __future__ import annotations

import yaml
from gateway_contract import Role
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import rendered_upload

LITELLM_CONFIG = "config.yaml"


def metrics_behind_the_master_key(args: StackValidationArgs, report: ReportViolation) -> None:
    text = rendered_upload(args.resources, Role.GATEWAY, LITELLM_CONFIG)
    if not text:
        return
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        report(f"LiteLLM's config is not YAML: {error}")
        return
    settings = config.get("litellm_settings") or {}
    if (
        "prometheus" in (settings.get("callbacks") or [])
        and settings.get("require_auth_for_metrics_endpoint") is not True
    ):
        report(
            "LiteLLM would serve its metrics (every client's usage) to anyone who reaches its port: "
            "set require_auth_for_metrics_endpoint"
        )
