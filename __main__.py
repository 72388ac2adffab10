"""Pulumi program: read the stack settings, build the gateway, export what a client needs."""

from pathlib import Path

import pulumi

from components.errors import SettingsError
from components.settings import Settings
from components.stack import GatewayStack

try:
    settings = Settings.from_pulumi_config(pulumi.get_project())
    gateway = GatewayStack(
        "gateway",
        settings,
        pulumi.get_stack(),
        project_dir=Path(__file__).resolve().parent,
        master_key=pulumi.Config().get_secret("masterKey"),
    )
except SettingsError as error:
    # One line naming the setting, before anything is provisioned; no traceback.
    raise pulumi.RunError(str(error)) from None

pulumi.export("apiBaseUrl", gateway.api_base_url)
pulumi.export("apiRoutes", gateway.api_routes)
pulumi.export("localApiUrl", gateway.local_api_url)
pulumi.export("models", gateway.models)
pulumi.export("masterKey", gateway.master_key)
