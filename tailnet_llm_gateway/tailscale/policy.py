"""The tailnet policy, applied with the Tailscale provider."""

from __future__ import annotations

import pulumi
import pulumi_tailscale as tailscale


class TailnetPolicy(pulumi.ComponentResource):
    """Applies the merged tailnet policy (the user's base plus the gateway's entries).

    Guarantees: the applied text is exactly the merged policy that passed its own tests offline;
    an existing policy is never overwritten on the first apply unless `overwrite_existing` is set
    (otherwise Tailscale refuses, and docs/tailnet-policy.md says how to import it); `pulumi destroy` never
    resets the tailnet policy (the resource is retained, and reset is off). Optionally tags the
    gateway host device, after the policy that owns the tag is in place.
    """

    acl: tailscale.Acl

    def __init__(
        self,
        name: str,
        policy: str,
        overwrite_existing: bool,
        device_name: str | None = None,
        device_tag: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tailnet-llm-gateway:tailscale:TailnetPolicy", name, {}, opts)
        self.acl = tailscale.Acl(
            name,
            acl=policy,
            overwrite_existing_content=overwrite_existing,
            reset_acl_on_destroy=False,
            # The policy is the whole tailnet's, not this stack's: destroying the stack leaves it.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        outputs = {"policy": self.acl.acl}
        if device_name is not None and device_tag is not None:
            device = tailscale.get_device_output(name=device_name, opts=pulumi.InvokeOptions(parent=self))
            self.device_tags = tailscale.DeviceTags(
                f"{name}-device-tags",
                device_id=device.node_id,
                tags=[device_tag],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.acl]),
            )
            outputs["deviceId"] = device.node_id
        self.register_outputs(outputs)
