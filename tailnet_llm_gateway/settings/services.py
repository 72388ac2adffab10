"""Settings of the services, networks, models and TLS files the stack knows."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from ..addresses import require_tailscale_ip
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


# A machine's name in the tailnet policy (its `hosts` alias): letters, digits and hyphens, as Tailscale
# names hosts; dots and underscores would read as a domain or be refused.
MachineName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=63)]


def _machine_address(value: str) -> str:
    try:
        return require_tailscale_ip(value)
    except ValueError:
        if grammar.is_host_name(value) and not value.replace(".", "").isdigit():
            raise ValueError(
                f"{value!r} is a name; give the machine's tailnet address (`tailscale ip -4`): the policy names "
                "machines by address, and containers cannot resolve MagicDNS names"
            ) from None
        raise


class MachineSettings(StrictModel):
    """Another machine of the tailnet that serves models (a second GPU box)."""

    # Its tailnet address (`tailscale ip -4 <machine>`): the policy names a machine by address, and
    # containers cannot resolve MagicDNS names.
    address: Annotated[str, AfterValidator(_machine_address)]


class ServiceSettings(StrictModel):
    port: Port
    # A container on these Docker networks, or (`machine`) a server on another tailnet machine.
    networks: tuple[Name, ...] = ()
    machine: MachineName | None = None
    # The name other containers resolve; Docker DNS answers for the service name by default.
    host: Annotated[str, AfterValidator(grammar.host)] | None = None

    @model_validator(mode="after")
    def _local_or_remote(self) -> ServiceSettings:
        if self.machine is None and not self.networks:
            raise ValueError("set 'networks' (a container of this host) or 'machine' (another tailnet machine)")
        if self.machine is not None and (self.networks or self.host is not None):
            raise ValueError("a service on another machine has no 'networks' or 'host': its machine's address is used")
        return self


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
