"""Settings of the tailnet side: the policy the stack merges and tests, and the gateway's own node."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
)

from ..images import TAILSCALE_IMAGE, ImageRef, parse_image
from . import grammar
from .fields import Image, Principal, StrictModel, audience

_TAG = r"^tag:[A-Za-z0-9][A-Za-z0-9-]*$"


def _identity(value: str) -> str:
    # A test identity is one principal: a user or a tag, as Tailscale's policy `tests` expect.
    if not (value.startswith("tag:") or "@" in value):
        raise ValueError(f"{value!r} is not a user@domain or tag:name to test with")
    return grammar.principal(value, "a user@domain or tag:name to test with")


Identity = Annotated[str, AfterValidator(_identity)]


class PolicyTestSettings(StrictModel):
    """Who the policy's own `tests` check: members must reach 443, outsiders must not."""

    members: tuple[Identity, ...] = Field(min_length=1)
    outsiders: tuple[Identity, ...] = Field(min_length=1)


class TailnetPolicySettings(StrictModel):
    """The gateway's part of the tailnet policy and how it is applied."""

    tag: str = Field(default="tag:llm-gateway", pattern=_TAG)
    owners: tuple[Principal, ...] = ("autogroup:admin",)
    audiences: tuple[Annotated[str, AfterValidator(audience)], ...] = Field(min_length=1)
    tests: PolicyTestSettings
    # The user's own policy file (HuJSON, in this repository, relative to Pulumi.yaml); everything in
    # it is kept, and the gateway's entries are merged in.
    base: Annotated[str, AfterValidator(grammar.relative_file)] | None = None
    # Apply the merged policy with the Tailscale provider. Off: render and check it only.
    manage: bool = False
    # The first apply refuses to replace a policy that was ever edited, unless this is set.
    overwrite_existing: bool = False
    # Also tag the gateway host (the device named tailnetHost) with `tag`.
    tag_device: bool = False


class NodeSettings(StrictModel):
    """The Tailscale container that joins the tailnet as the gateway's own node (tailnet-node mode)."""

    image: Image = TAILSCALE_IMAGE
    # A reusable key could join more machines under the gateway's tag if it leaked; off unless needed.
    auth_key_reusable: bool = False
    auth_key_expiry_days: int = Field(default=90, ge=1, le=90)
    memory_mb: int = Field(default=256, ge=64)
    pids: int = Field(default=256, ge=16)
    # The control server the node joins (`tailscale up --login-server`); unset: Tailscale's. The auth key
    # still comes from the Tailscale provider, so point its `tailscale:baseUrl` at the same server.
    login_server: Annotated[str, AfterValidator(grammar.control_url)] | None = None

    @property
    def image_ref(self) -> ImageRef:
        return parse_image(self.image)
