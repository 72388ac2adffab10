"""Settings of the containers the stack runs: LiteLLM's replicas and the edge, and their resources (memory,
processes, uid)."""

from __future__ import annotations

from pydantic import (
    Field,
    field_validator,
)

from policy.gateway_contract import SHARED_UIDS

from ..addresses import HostPort, require_loopback_bind
from ..gateway_process import Server
from ..images import CADDY_IMAGE, LITELLM_IMAGE, ImageRef, parse_image
from .fields import Image, Name, Port, StrictModel


class ContainerResources(StrictModel):
    memory_mb: int = Field(default=512, ge=64)
    pids: int = Field(default=256, ge=16)
    # Non-root by default; `uid:gid` so the policy can check it without resolving names.
    user: str = Field(default="61002:61002", pattern=r"^[1-9][0-9]*:[1-9][0-9]*$")

    @field_validator("user")
    @classmethod
    def _own_uid(cls, value: str) -> str:
        uid = int(value.split(":")[0])
        if uid < 1000 or uid in SHARED_UIDS:
            raise ValueError(
                f"uid {uid} is shared with host users or other images, and the process limit counts every "
                "process of a uid on the host; use a uid of its own, such as 61001"
            )
        return value

    @property
    def uid(self) -> int:
        return int(self.user.split(":")[0])

    @property
    def gid(self) -> int:
        return int(self.user.split(":")[1])


class GatewaySettings(StrictModel):
    service: Name = "model-gateway"
    host_bind: str = "127.0.0.1:11435"
    # The HTTP server that runs LiteLLM (see tailnet_llm_gateway/gateway_process.py for what each costs).
    server: Server = "granian"
    # Worker processes. One by default: each holds a whole LiteLLM (docs/benchmark.md), and with two on a
    # busy host uvicorn kills workers that miss its health ping while still importing LiteLLM.
    workers: int = Field(default=1, ge=1, le=32)
    # LiteLLM containers behind the edge. With two, a config change replaces one at a time while the other
    # answers (each drained first); with one, requests wait at the edge while it restarts.
    replicas: int = Field(default=2, ge=1, le=8)
    image: Image = LITELLM_IMAGE
    resources: ContainerResources = ContainerResources(memory_mb=2048, pids=512)
    # LiteLLM's Prometheus metrics (requests, tokens, latency, errors by client and model) on /metrics of
    # each replica's loopback port, behind the master key.
    metrics: bool = True

    @field_validator("host_bind")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        return str(require_loopback_bind(value))

    @property
    def bind(self) -> HostPort:
        return require_loopback_bind(self.host_bind)

    @property
    def image_ref(self) -> ImageRef:
        return parse_image(self.image)


class EdgeSettings(StrictModel):
    network: Name = "proxy-net"
    https_port: Port = 443
    image: Image = CADDY_IMAGE
    resources: ContainerResources = ContainerResources(memory_mb=256, pids=128, user="61001:61001")
    # A reload (every edge change) hands the connections still waiting to be accepted to the new config
    # instead of resetting them (net.ipv4.tcp_migrate_req in the edge's own network namespace: Caddy binds
    # each config's listener with SO_REUSEPORT and closes the old one). Needs Linux 5.14 or later; set it
    # false on an older kernel, where Docker refuses the setting.
    migrate_connections_on_reload: bool = True

    @property
    def image_ref(self) -> ImageRef:
        return parse_image(self.image)
