"""A container image pulled and run by digest."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from ..images import ImageRef


class PinnedImage(pulumi.ComponentResource):
    """Pulls an image at an exact release tag and exposes the `repo:tag@sha256:...` to run it by.

    Guarantees: the reference always carries a digest. Without a digest in the settings, the tag is
    resolved to the registry's digest at deploy time (so state records it, and a tag that moved shows
    up as a diff that replaces the container); a digest pinned in settings is used as it is. The image
    is kept on the host on destroy, so a rollback does not need the registry.
    """

    ref: pulumi.Output[str]
    # Capabilities the image's binary carries as file capabilities (they must stay in the bounding set).
    file_capabilities: tuple[str, ...]

    def __init__(self, name: str, image: ImageRef, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tailnet-llm-gateway:docker:PinnedImage", name, {"tag": image.tagged}, opts)
        if image.digest is not None:
            ref: pulumi.Output[str] = pulumi.Output.from_input(image.pinned(image.digest))
        else:
            registry = docker.get_registry_image_output(name=image.tagged, opts=pulumi.InvokeOptions(parent=self))
            ref = registry.sha256_digest.apply(image.pinned)
        self.image = docker.RemoteImage(name, name=ref, keep_locally=True, opts=pulumi.ResourceOptions(parent=self))
        self.ref = ref
        self.file_capabilities = image.file_capabilities
        self.register_outputs({"ref": ref})
