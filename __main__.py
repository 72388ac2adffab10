"""Pulumi program: read the stack settings, add the gateway built from them, export its outputs."""

from pathlib import Path

import pulumi

from tailnet_llm_gateway import Settings, SettingsError, TailnetLLMGateway
from tailnet_llm_gateway.client_config import client_output

try:
    here = Path(__file__).parent
    settings = Settings.from_pulumi_config(pulumi.get_project(), here / f"Pulumi.{pulumi.get_stack()}.yaml")
except SettingsError as error:
    # One line naming the setting, before anything is provisioned; no traceback.
    raise pulumi.RunError(str(error)) from None
config = pulumi.Config()
gateway = TailnetLLMGateway(
    "gateway",
    settings,
    master_key=config.get_secret("masterKey"),
    client_keys=config.get_secret_object("clientKeys"),
    project_dir=here,
)
pulumi.export("apiBaseUrl", gateway.api_base_url)
pulumi.export("apiRoutes", gateway.api_routes)
pulumi.export("localApiUrl", gateway.local_api_url)
pulumi.export("models", gateway.models)
pulumi.export("masterKey", gateway.master_key)
# The Caddyfile this deploy wrote; the running edge answers the same id when it serves it (docs/operations.md).
pulumi.export("edgeConfigId", gateway.edge_config_id)
for name, client in gateway.clients.items():
    pulumi.export(client_output(name), client)
