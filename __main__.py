"""Pulumi program: read the stack settings, build the plan, wire the gateway from it, export outputs."""

from pathlib import Path

import pulumi

from components.client_config import client_output
from components.errors import SettingsError
from components.plan import build_plan
from components.settings import Settings
from components.stack import GatewayStack

try:
    here, stack = Path(__file__).parent, pulumi.get_stack()
    settings = Settings.from_pulumi_config(pulumi.get_project(), here / f"Pulumi.{stack}.yaml")
    plan = build_plan(settings, stack, here)
    # Wiring can still meet the host: a Docker network of the same name with other settings.
    config = pulumi.Config()
    gateway = GatewayStack(
        "gateway",
        plan,
        master_key=config.get_secret("masterKey"),
        client_keys=config.get_secret_object("clientKeys"),
    )
except SettingsError as error:
    # One line naming the setting, before anything is provisioned; no traceback.
    raise pulumi.RunError(str(error)) from None

pulumi.export("apiBaseUrl", gateway.api_base_url)
pulumi.export("apiRoutes", gateway.api_routes)
pulumi.export("localApiUrl", gateway.local_api_url)
pulumi.export("models", gateway.models)
pulumi.export("masterKey", gateway.master_key)
# The Caddyfile this deploy wrote; the running edge answers the same id when it serves it (README "Operations").
pulumi.export("edgeConfigId", gateway.edge_config_id)
for name, client in gateway.clients.items():
    pulumi.export(client_output(name), client)
