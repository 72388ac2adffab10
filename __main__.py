"""Pulumi program: read the stack settings, build the plan, wire the gateway from it, export outputs."""

from pathlib import Path

import pulumi

from components.errors import SettingsError
from components.plan import build_plan
from components.settings import Settings
from components.stack import GatewayStack

try:
    plan = build_plan(Settings.from_pulumi_config(pulumi.get_project()), pulumi.get_stack(), Path(__file__).parent)
    # Wiring can still meet the host: a Docker network of the same name with other settings.
    gateway = GatewayStack("gateway", plan, master_key=pulumi.Config().get_secret("masterKey"))
except SettingsError as error:
    # One line naming the setting, before anything is provisioned; no traceback.
    raise pulumi.RunError(str(error)) from None

pulumi.export("apiBaseUrl", gateway.api_base_url)
pulumi.export("apiRoutes", gateway.api_routes)
pulumi.export("localApiUrl", gateway.local_api_url)
pulumi.export("models", gateway.models)
pulumi.export("masterKey", gateway.master_key)
