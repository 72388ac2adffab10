"""How a registered Docker resource becomes a Docker object, as pulumi-docker 5.2.0 creates it (its source,
kreuzwerker/terraform-provider-docker, internal/provider/resource_docker_container_funcs.go and
resource_docker_network_funcs.go), with the harness's substitutions (`Substitutions`). Networks are
networks.py's.

- container create: ContainerCreate with the declared config and no network config (Docker attaches
  the default bridge); with `networks_advanced`, disconnect `bridge` and connect each network with its
  aliases (and `ipv4_address`, the endpoint's fixed address); every input it does not know is an error.

The only substitutions, all in one place (`Substitutions`): an image `repo:tag@sha256:...` runs as the
local stand-in tagged `repo:tag` (stand-ins have no registry digest); a published port on a Tailscale
address is published on a loopback address instead, and every published port on a free port there; a
host path is mapped to a test directory; every name gets a prefix and every object a label, so the tests
never touch anything they did not create; and a container may get environment variables the test's
surroundings need (`test_env`: the test tailnet's knobs for the node, which no user sets), added after
the declared ones.
"""

from __future__ import annotations

import io
import ipaddress
import re
import socket
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.types import LogConfig, Ulimit

from harness.program_run import unwrap

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
DYNAMIC = "pulumi-python:dynamic:Resource"

TAILSCALE_RANGE = ipaddress.ip_network("100.64.0.0/10")

# Every container input the harness knows how to create; anything else is an error, never ignored.
CONTAINER_INPUTS = {
    "name",
    "image",
    "command",
    "entrypoints",
    "envs",
    "user",
    "labels",
    "ports",
    "readOnly",
    "tmpfs",
    "capabilities",
    "securityOpts",
    "privileged",
    "memory",
    "memorySwap",
    "ulimits",
    "restart",
    "logDriver",
    "logOpts",
    "healthcheck",
    "volumes",
    "networkMode",
    "sysctls",
    "networksAdvanced",
    "uploads",
    "start",
    "mustRun",
    "wait",
    "waitTimeout",
    "destroyGraceSeconds",
    "stopSignal",
    "stopTimeout",
}


class EngineError(RuntimeError):
    """What `pulumi up` or `pulumi destroy` would report as a failed step."""

    def __init__(self, message: str, created_id: str | None = None) -> None:
        super().__init__(message)
        # A container that was created before the step failed; state keeps it, tainted.
        self.created_id = created_id


@dataclass
class Substitutions:
    prefix: str
    label: dict[str, str]
    host_paths: dict[str, str]
    # Where a port declared on a Tailscale address is published instead; None keeps the declared address.
    loopback: str | None
    # (container name, internal port) -> (host address, host port) as actually published
    published: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    # container name -> NAME=value entries added to its declared environment
    env: dict[str, list[str]] = field(default_factory=dict)

    def name(self, declared: str) -> str:
        return f"{self.prefix}{declared}"

    def image(self, declared: str) -> str:
        return declared.split("@", 1)[0]

    def host_path(self, declared: str) -> str:
        if declared not in self.host_paths:
            raise EngineError(f"the test gave no directory for the host path {declared}")
        return self.host_paths[declared]

    def host_ip(self, declared: str) -> str:
        address = ipaddress.ip_address(declared)
        if address.is_loopback:
            return declared
        if address in TAILSCALE_RANGE:
            return self.loopback or declared
        raise EngineError(f"a port is published on {declared}, which is neither loopback nor a tailnet address")


def free_port(host: str) -> int:
    """A port free on `host`; for an address this machine does not have (yet), one free on loopback."""
    with socket.socket() as sock:
        sock.bind((host if ipaddress.ip_address(host).is_loopback else "127.0.0.1", 0))
        return sock.getsockname()[1]


def duration_ns(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not match:
        raise EngineError(f"cannot read the duration {text!r}")
    scale = {"ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}[match.group(2)]
    return int(float(match.group(1)) * scale)


def plain(value: Any) -> Any:
    return unwrap(value)[0]


def upload_tar(upload: dict[str, Any]) -> bytes:
    content = upload["content"].encode()
    default = 0o744 if upload.get("executable") else 0o644
    mode = int(upload["permissions"], 8) if upload.get("permissions") else default
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        header = tarfile.TarInfo(upload["file"])
        header.size, header.mode, header.mtime = len(content), mode, int(time.time())
        header.uid, header.gid = int(upload.get("owner") or 0), int(upload.get("group") or 0)
        archive.addfile(header, io.BytesIO(content))
    return buffer.getvalue()


def create_container(api: docker.APIClient, sub: Substitutions, inputs: dict[str, Any]) -> str:
    """Create a container (not started) with the declared config, and connect it to its networks."""
    unknown = set(inputs) - CONTAINER_INPUTS
    if unknown:
        raise EngineError(f"the harness does not know the container inputs {sorted(unknown)}")
    name = inputs["name"]
    envs = [*(plain(inputs.get("envs")) or []), *sub.env.get(name, [])]
    labels = {item["label"]: item["value"] for item in inputs.get("labels") or []} | sub.label
    ports, bindings = [], {}
    for port in inputs.get("ports") or []:
        internal = int(port["internal"])
        host = sub.host_ip(port.get("ip") or "0.0.0.0")
        # A replacement keeps the port its predecessor had, as the declared port would be the same.
        previous = sub.published.get((name, internal))
        external = previous[1] if previous and previous[0] == host else free_port(host)
        ports.append(internal)
        bindings[internal] = (host, external)
        sub.published[(name, internal)] = (host, external)
    binds = []
    for volume in inputs.get("volumes") or []:
        source = sub.name(volume["volumeName"]) if volume.get("volumeName") else sub.host_path(volume["hostPath"])
        binds.append(f"{source}:{volume['containerPath']}:{'ro' if volume.get('readOnly') else 'rw'}")
    caps = inputs.get("capabilities") or {}
    health = inputs.get("healthcheck")
    healthcheck = (
        None
        if not health
        else {
            "test": health["tests"],
            "interval": duration_ns(health["interval"]),
            "timeout": duration_ns(health["timeout"]),
            "retries": int(health["retries"]),
            "start_period": duration_ns(health["startPeriod"]),
        }
    )
    host_config = api.create_host_config(
        port_bindings=bindings or None,
        binds=binds or None,
        tmpfs=inputs.get("tmpfs"),
        cap_add=caps.get("adds"),
        cap_drop=caps.get("drops"),
        security_opt=inputs.get("securityOpts"),
        privileged=bool(inputs.get("privileged")),
        mem_limit=int(inputs["memory"]) * 1024 * 1024 if inputs.get("memory") else None,
        memswap_limit=int(inputs["memorySwap"]) * 1024 * 1024 if inputs.get("memorySwap") else None,
        ulimits=[Ulimit(name=u["name"], soft=int(u["soft"]), hard=int(u["hard"])) for u in inputs.get("ulimits") or []],
        restart_policy={"Name": inputs.get("restart", "no")},
        log_config=LogConfig(type=inputs.get("logDriver", "json-file"), config=inputs.get("logOpts") or {}),
        read_only=bool(inputs.get("readOnly")),
        network_mode=inputs.get("networkMode"),
        sysctls=inputs.get("sysctls"),
    )
    try:
        created = api.create_container(
            sub.image(inputs["image"]),
            command=inputs.get("command"),
            name=sub.name(name),
            user=inputs.get("user"),
            environment=envs,
            labels=labels,
            ports=ports or None,
            healthcheck=healthcheck,
            host_config=host_config,
            entrypoint=inputs.get("entrypoints"),
            stop_signal=inputs.get("stopSignal"),
            stop_timeout=int(inputs["stopTimeout"]) if inputs.get("stopTimeout") else None,
            use_config_proxy=False,
        )
    except docker.errors.APIError as error:
        raise EngineError(f"Unable to create container: {error.explanation}") from None
    container_id = created["Id"]
    if inputs.get("networksAdvanced"):
        try:
            api.disconnect_container_from_network(container_id, "bridge")
        except docker.errors.APIError as error:
            if "is not connected to the network bridge" not in str(error):
                raise EngineError(f"Unable to disconnect the default network: {error.explanation}") from None
        for network in inputs["networksAdvanced"]:
            api.connect_container_to_network(
                container_id,
                sub.name(network["name"]),
                aliases=network.get("aliases"),
                ipv4_address=network.get("ipv4Address"),
            )
    return container_id


def purge(api: docker.APIClient, label: dict[str, str]) -> None:
    """Remove every object this test run labelled, whatever state says (the test's own cleanup)."""
    selector = {"label": [f"{k}={v}" for k, v in label.items()]}
    for container in api.containers(all=True, filters=selector):
        api.remove_container(container["Id"], force=True, v=True)
    for network in api.networks(filters=selector):
        for attached in api.inspect_network(network["Id"]).get("Containers") or {}:
            api.disconnect_container_from_network(attached, network["Id"], force=True)
        api.remove_network(network["Id"])
    for volume in api.volumes(filters=selector).get("Volumes") or []:
        api.remove_volume(volume["Name"], force=True)
