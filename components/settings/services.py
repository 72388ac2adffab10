"""Settings of the services, networks, models and TLS files the stack knows."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from . import grammar
from .fields import ExactPath, ModelName, Name, Port, StrictModel


class TlsSettings(StrictModel):
    """Certificate files that `tailscale cert` wrote into a directory on the Docker host."""

    mode: Literal["tailscale-cert-files"] = "tailscale-cert-files"
    cert_dir: Annotated[str, AfterValidator(grammar.absolute_directory)]
    # File names inside certDir.
    cert_file: Annotated[str, AfterValidator(grammar.file_name)] = "tailnet.crt"
    key_file: Annotated[str, AfterValidator(grammar.file_name)] = "tailnet.key"


class NetworkSettings(StrictModel):
    subnet: str | None = None
    # An existing network is looked up by name and never created or deleted by this stack.
    existing: bool = False


class ServiceSettings(StrictModel):
    port: Port
    networks: tuple[Name, ...] = Field(min_length=1)
    # The name other containers resolve; Docker DNS answers for the service name by default.
    host: Annotated[str, AfterValidator(grammar.host)] | None = None


class BackendRef(StrictModel):
    """One backend serving a model, and its share of the requests (LiteLLM's `weight`)."""

    service: Name
    weight: int = Field(default=1, ge=1, le=100)


class ModelSettings(StrictModel):
    # One backend (`backend: llamacpp`), or several that LiteLLM balances and fails over between.
    backend: Name | None = None
    backends: tuple[BackendRef, ...] | None = Field(default=None, min_length=1)
    model: ModelName
    api_path: ExactPath = "/v1"
    timeout: int | None = Field(default=None, gt=0)
    stream_timeout: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_way_to_name_backends(self) -> ModelSettings:
        if (self.backend is None) == (self.backends is None):
            raise ValueError("set exactly one of 'backend' and 'backends'")
        return self

    @property
    def backend_refs(self) -> tuple[BackendRef, ...]:
        return self.backends if self.backends is not None else (BackendRef(service=self.backend or ""),)
