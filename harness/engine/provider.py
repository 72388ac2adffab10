"""The Pulumi engine and the Docker provider, played on a real Docker engine for registered resources.

There is no Pulumi CLI here, so the engine tests take what the program registers under mocks
(`harness.program_run.run_program`) and apply it the way `pulumi up` with pulumi-docker 5.2.0 would. The
provider's behaviour is taken from its source, kreuzwerker/terraform-provider-docker,
internal/provider/resource_docker_container_funcs.go and resource_docker_network_funcs.go:

- container create: ContainerCreate with the declared config and no network config (Docker attaches
  the default bridge); with `networks_advanced`, disconnect `bridge` and connect each network with its
  aliases (and `ipv4_address`, the endpoint's fixed address); then each upload as a one-file tar
  extracted at "/"; then start, unless `start` is false; with `wait`, inspect every second until the
  healthcheck says healthy, failing after `wait_timeout`
  seconds; a container that is not running although `must_run` is deleted and reported as failed;
- container delete: stop with `destroy_grace_seconds` when set, then force-remove with its anonymous
  volumes; in-place updates for restart and memory settings, everything else replaces the container;
- network create with driver, attachable and IPAM config; delete retried while the network "has active
  endpoints" (the provider retries for 30 s, this harness for `network_delete_timeout_s`);
- volumes: create and remove; RemoteImage: the image must be on the engine (keep_locally keeps it).

and the engine's resource options: `delete_before_replace` (every container: the provider sets it),
`replace_on_changes`, `retain_on_delete` (the delete is skipped) and `import_` (the resource is adopted
after checking that its declared inputs match what exists). Replacements run in the engine's order for
delete-before-replace: the program registers a resource only once everything it depends on is done, so
a container that depends (`depends_on`) on something this run changes is deleted right before it is
created again, after that dependency finished; every other container being replaced is deleted at the
start, as the engine would start them all at once (dependents before what they depend on); other
resources are created before the old one is deleted.

The stack's one dynamic resource (`components.docker.live_config`) runs its provider's code, against the
same engine, when its inputs change.

The only substitutions, all in one place (`_Substitutions`): an image `repo:tag@sha256:...` runs as the
local stand-in tagged `repo:tag` (stand-ins have no registry digest); a published port on a Tailscale
address is published on a loopback address instead, and every published port on a free port there; a
host path is mapped to a test directory; every name gets a prefix and every object a label, so the tests
never touch anything they did not create; and a container may get environment variables the test's
surroundings need (`test_env`: the test tailnet's knobs for the node, which no user sets), added after
the declared ones.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import re
import socket
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.types import IPAMConfig, IPAMPool, LogConfig, Ulimit

from harness.engine.health import HealthReport
from harness.program_run import ProgramRun, Registered, unwrap

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
DYNAMIC = "pulumi-python:dynamic:Resource"
ENGINE_TYPES = (REMOTE_IMAGE, NETWORK, VOLUME, CONTAINER, DYNAMIC)
TEST_LABEL = "tailnet-llm-gateway.test-run"
TAILSCALE_RANGE = ipaddress.ip_network("100.64.0.0/10")
# What resourceDockerContainerUpdate applies in place; the provider neither updates nor replaces for
# the `ignored` ones (unless `replace_on_changes` names them).
UPDATED_IN_PLACE = {"restart", "maxRetryCount", "cpuShares", "memory", "memorySwap", "cpuSet"}
IGNORED_ON_CHANGE = {
    "healthcheck",
    "tmpfs",
    "wait",
    "waitTimeout",
    "destroyGracefulSeconds",
    "destroyGraceSeconds",
    "start",
    "mustRun",
    "init",
    "attach",
    "logs",
    "rm",
    "removeVolumes",
}
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
class Deployed:
    resource: Registered
    docker_id: str | None
    # Created, but its create step failed: the next `up` replaces it, as the provider's taint does.
    tainted: bool = False


@dataclass
class _Substitutions:
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


def _free_port(host: str) -> int:
    """A port free on `host`; for an address this machine does not have (yet), one free on loopback."""
    with socket.socket() as sock:
        sock.bind((host if ipaddress.ip_address(host).is_loopback else "127.0.0.1", 0))
        return sock.getsockname()[1]


def _duration_ns(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not match:
        raise EngineError(f"cannot read the duration {text!r}")
    scale = {"ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}[match.group(2)]
    return int(float(match.group(1)) * scale)


def _plain(value: Any) -> Any:
    return unwrap(value)[0]


def _upload_tar(upload: dict[str, Any]) -> bytes:
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


class Engine:
    """Applies registered resources to a Docker engine with the provider's semantics; remembers state."""

    def __init__(
        self,
        client: docker.DockerClient,
        run_id: str,
        host_paths: dict[str, str] | None = None,
        loopback: str | None = "127.0.0.2",
        prefix: str = "tlgtest-",
        network_delete_timeout_s: float = 3.0,
        log: Callable[[str], None] = print,
        test_env: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.client = client
        self.api = client.api
        env = {name: [f"{k}={v}" for k, v in values.items()] for name, values in (test_env or {}).items()}
        self.sub = _Substitutions(prefix, {TEST_LABEL: run_id}, dict(host_paths or {}), loopback, env=env)
        self.network_delete_timeout_s = network_delete_timeout_s
        self.log = log
        self.state: dict[tuple[str, str], Deployed] = {}
        # Seconds from start to healthy, per container name, for the last time each was created.
        self.time_to_healthy: dict[str, float] = {}
        # Docker's healthcheck log when each container was first reported healthy, for the last time each was created.
        self.health_reports: dict[str, HealthReport] = {}

    # ---- what the program's invokes see ---------------------------------------------------------------

    def network_lookup(self, name: str) -> dict[str, Any] | None:
        """The getNetwork answer for a declared network name, as the provider would give it."""
        try:
            network = self.api.inspect_network(self.sub.name(name))
        except docker.errors.NotFound:
            return None
        pools = [{"subnet": c.get("Subnet"), "gateway": c.get("Gateway")} for c in network["IPAM"].get("Config") or []]
        return {"name": name, "id": network["Id"], "driver": network["Driver"], "ipamConfigs": pools}

    # ---- the engine's steps -----------------------------------------------------------------------------

    def up(self, run: ProgramRun, skip_containers: frozenset[str] = frozenset()) -> None:
        """`pulumi up` for this run's registered resources. `skip_containers` names containers left out."""
        desired = [
            r
            for r in run.resources
            if r.type in ENGINE_TYPES
            and not (r.type == CONTAINER and r.inputs["name"] in skip_containers)
            and not (r.type == DYNAMIC and r.inputs["container"] in skip_containers)
        ]
        keys = [(r.type, r.name) for r in desired]
        plan = {key: self._step(resource) for key, resource in zip(keys, desired, strict=True)}
        changed = {key for key, step in plan.items() if step != "same"}
        dbr = [key for key, step in plan.items() if step == "replace" and key[0] == CONTAINER]
        waits = {key for key, resource in zip(keys, desired, strict=True) if self._depends_on(resource) & changed}
        for key in reversed([k for k in self.state if k in dbr and k not in waits]):
            self._delete(self.state.pop(key))
        replaced_later = []
        for key, resource in zip(keys, desired, strict=True):
            step = plan[key]
            if step == "same":
                self.state[key].resource = resource
            elif step == "update":
                self._update(self.state[key], resource)
            else:
                if step == "replace" and key in dbr and key in waits:
                    self._delete(self.state.pop(key))
                if step == "replace" and key in self.state:
                    replaced_later.append(self.state.pop(key))
                try:
                    self.state[key] = Deployed(resource, self._create(resource))
                except EngineError as error:
                    if error.created_id is not None:
                        self.state[key] = Deployed(resource, error.created_id, tainted=True)
                    raise
        for old in reversed(replaced_later):
            self._delete(old)
        for key in reversed([k for k in list(self.state) if k not in plan]):
            self._delete(self.state.pop(key))

    def recreate(self, declared_name: str) -> None:
        """Delete one container and create it again from the same registered inputs."""
        key = next(
            k
            for k, d in self.state.items()
            if d.resource.type == CONTAINER and d.resource.inputs["name"] == declared_name
        )
        deployed = self.state.pop(key)
        self._delete(deployed)
        self.state[key] = Deployed(deployed.resource, self._create(deployed.resource))

    def destroy(self) -> None:
        """`pulumi destroy`: every resource in reverse order (retained ones are only forgotten)."""
        for key in reversed(list(self.state)):
            self._delete(self.state.pop(key))

    def teardown(self) -> None:
        """`pulumi destroy`, then remove whatever this run labelled even if the destroy failed."""
        try:
            self.destroy()
        finally:
            self.purge()

    def purge(self) -> None:
        """Remove every object this test run labelled, whatever state says (the test's own cleanup)."""
        selector = {"label": [f"{k}={v}" for k, v in self.sub.label.items()]}
        for container in self.api.containers(all=True, filters=selector):
            self.api.remove_container(container["Id"], force=True, v=True)
        for network in self.api.networks(filters=selector):
            for attached in self.api.inspect_network(network["Id"]).get("Containers") or {}:
                self.api.disconnect_container_from_network(attached, network["Id"], force=True)
            self.api.remove_network(network["Id"])
        for volume in self.api.volumes(filters=selector).get("Volumes") or []:
            self.api.remove_volume(volume["Name"], force=True)
        self.state.clear()

    def published(self, container: str, internal: int) -> tuple[str, int]:
        return self.sub.published[(container, internal)]

    def container_id(self, declared_name: str) -> str:
        for deployed in self.state.values():
            if deployed.resource.type == CONTAINER and deployed.resource.inputs["name"] == declared_name:
                assert deployed.docker_id is not None, "a container in state has no id"
                return deployed.docker_id
        raise KeyError(declared_name)

    @staticmethod
    def _depends_on(resource: Registered) -> set[tuple[str, str]]:
        """What a resource's `depends_on` names, as state keys."""
        depends_on = getattr(resource.opts, "depends_on", None) or []
        return {(str(getattr(d, "_type", "")), str(getattr(d, "_name", ""))) for d in depends_on}

    # ---- diff ----------------------------------------------------------------------------------------------

    def _step(self, resource: Registered) -> str:
        key = (resource.type, resource.name)
        if key not in self.state:
            return "create"
        if self.state[key].tainted:
            return "replace"
        old = self.state[key].resource
        before, after = _comparable(old.inputs), _comparable(resource.inputs)
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        if not changed:
            return "same"
        if resource.type == DYNAMIC:
            return "update"
        if resource.type != CONTAINER:
            return "replace"
        replace_on = set(getattr(resource.opts, "replace_on_changes", None) or [])
        if changed & replace_on or changed - UPDATED_IN_PLACE - IGNORED_ON_CHANGE:
            return "replace"
        return "update" if changed & UPDATED_IN_PLACE else "same"

    # ---- create -------------------------------------------------------------------------------------------

    def _create(self, resource: Registered) -> str | None:
        inputs = resource.inputs
        import_id = getattr(resource.opts, "import_", None)
        if resource.type == REMOTE_IMAGE:
            try:
                return self.client.images.get(self.sub.image(inputs["name"])).id
            except docker.errors.ImageNotFound:
                raise EngineError(f"no image {inputs['name']} on the engine (build the stand-ins)") from None
        if resource.type == NETWORK:
            return self._adopt_network(resource, import_id) if import_id else self._create_network(inputs)
        if import_id:
            raise EngineError(f"import of {resource.type} is not part of this harness")
        if resource.type == DYNAMIC:
            self._run_dynamic(inputs)
            return None
        if resource.type == VOLUME:
            return self.api.create_volume(self.sub.name(inputs["name"]), labels=self.sub.label)["Name"]
        return self._create_container(inputs)

    def _create_network(self, inputs: dict[str, Any]) -> str:
        ipam = None
        if inputs.get("ipamConfigs"):
            pools = [IPAMPool(subnet=c.get("subnet"), gateway=c.get("gateway")) for c in inputs["ipamConfigs"]]
            ipam = IPAMConfig(pool_configs=pools)
        try:
            created = self.api.create_network(
                self.sub.name(inputs["name"]),
                driver=inputs.get("driver"),
                ipam=ipam,
                attachable=inputs.get("attachable"),
                internal=bool(inputs.get("internal")),
                labels=self.sub.label,
            )
        except docker.errors.APIError as error:
            raise EngineError(f"Unable to create network: {error.explanation}") from None
        return created["Id"]

    def _adopt_network(self, resource: Registered, import_id: str) -> str:
        inputs = resource.inputs
        actual = self.api.inspect_network(import_id)
        pools = [
            {k: v for k, v in (("subnet", c.get("Subnet")), ("gateway", c.get("Gateway"))) if v}
            for c in actual["IPAM"].get("Config") or []
        ]
        declared_pools = [{k: v for k, v in c.items() if v} for c in inputs.get("ipamConfigs") or []]
        mismatch = {
            "name": (actual["Name"], self.sub.name(inputs["name"])),
            "driver": (actual["Driver"], inputs.get("driver")),
            "attachable": (actual.get("Attachable", False), bool(inputs.get("attachable"))),
        }
        if declared_pools:
            mismatch["ipamConfigs"] = (pools, declared_pools)
        differs = {k: v for k, v in mismatch.items() if v[0] != v[1]}
        if differs:
            raise EngineError(f"inputs to import do not match the existing resource {resource.name}: {differs}")
        self.log(f"engine: adopted the existing network {actual['Name']}")
        return import_id

    def _create_container(self, inputs: dict[str, Any]) -> str:
        unknown = set(inputs) - CONTAINER_INPUTS
        if unknown:
            raise EngineError(f"the harness does not know the container inputs {sorted(unknown)}")
        name = inputs["name"]
        envs = [*(_plain(inputs.get("envs")) or []), *self.sub.env.get(name, [])]
        labels = {item["label"]: item["value"] for item in inputs.get("labels") or []} | self.sub.label
        ports, bindings = [], {}
        for port in inputs.get("ports") or []:
            internal = int(port["internal"])
            host = self.sub.host_ip(port.get("ip") or "0.0.0.0")
            # A replacement keeps the port its predecessor had, as the declared port would be the same.
            previous = self.sub.published.get((name, internal))
            external = previous[1] if previous and previous[0] == host else _free_port(host)
            ports.append(internal)
            bindings[internal] = (host, external)
            self.sub.published[(name, internal)] = (host, external)
        binds = []
        for volume in inputs.get("volumes") or []:
            source = (
                self.sub.name(volume["volumeName"])
                if volume.get("volumeName")
                else self.sub.host_path(volume["hostPath"])
            )
            binds.append(f"{source}:{volume['containerPath']}:{'ro' if volume.get('readOnly') else 'rw'}")
        caps = inputs.get("capabilities") or {}
        health = inputs.get("healthcheck")
        healthcheck = (
            None
            if not health
            else {
                "test": health["tests"],
                "interval": _duration_ns(health["interval"]),
                "timeout": _duration_ns(health["timeout"]),
                "retries": int(health["retries"]),
                "start_period": _duration_ns(health["startPeriod"]),
            }
        )
        host_config = self.api.create_host_config(
            port_bindings=bindings or None,
            binds=binds or None,
            tmpfs=inputs.get("tmpfs"),
            cap_add=caps.get("adds"),
            cap_drop=caps.get("drops"),
            security_opt=inputs.get("securityOpts"),
            privileged=bool(inputs.get("privileged")),
            mem_limit=int(inputs["memory"]) * 1024 * 1024 if inputs.get("memory") else None,
            memswap_limit=int(inputs["memorySwap"]) * 1024 * 1024 if inputs.get("memorySwap") else None,
            ulimits=[
                Ulimit(name=u["name"], soft=int(u["soft"]), hard=int(u["hard"])) for u in inputs.get("ulimits") or []
            ],
            restart_policy={"Name": inputs.get("restart", "no")},
            log_config=LogConfig(type=inputs.get("logDriver", "json-file"), config=inputs.get("logOpts") or {}),
            read_only=bool(inputs.get("readOnly")),
            network_mode=inputs.get("networkMode"),
            sysctls=inputs.get("sysctls"),
        )
        try:
            created = self.api.create_container(
                self.sub.image(inputs["image"]),
                command=inputs.get("command"),
                name=self.sub.name(name),
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
                self.api.disconnect_container_from_network(container_id, "bridge")
            except docker.errors.APIError as error:
                if "is not connected to the network bridge" not in str(error):
                    raise EngineError(f"Unable to disconnect the default network: {error.explanation}") from None
            for network in inputs["networksAdvanced"]:
                self.api.connect_container_to_network(
                    container_id,
                    self.sub.name(network["name"]),
                    aliases=network.get("aliases"),
                    ipv4_address=network.get("ipv4Address"),
                )
        try:
            self._upload_and_start(name, container_id, inputs)
        except EngineError as error:
            raise EngineError(str(error), created_id=container_id) from None
        return container_id

    def _upload_and_start(self, name: str, container_id: str, inputs: dict[str, Any]) -> None:
        for upload in _plain(inputs.get("uploads")) or []:
            try:
                self.api.put_archive(container_id, "/", _upload_tar(upload))
            except docker.errors.APIError as error:
                raise EngineError(f"Unable to upload volume content: {error.explanation}") from None
        if not inputs.get("start", True):
            return
        started = time.monotonic()
        try:
            self.api.start(container_id)
        except docker.errors.APIError as error:
            raise EngineError(f"Unable to start container: {error.explanation}") from None
        if inputs.get("wait"):
            self._wait_healthy(name, container_id, started, float(inputs.get("waitTimeout", 60)))
        state = self.api.inspect_container(container_id)["State"]
        if not state["Running"] and inputs.get("mustRun", True):
            logs = self.api.logs(container_id, tail=20).decode(errors="replace")
            raise EngineError(f"container {name} failed to be in running state:\n{logs}")

    def _wait_healthy(self, name: str, container_id: str, started: float, timeout_s: float) -> None:
        while time.monotonic() - started < timeout_s:
            inspect = self.api.inspect_container(container_id)
            if (inspect["State"].get("Health") or {}).get("Status") == "healthy":
                self.time_to_healthy[name] = time.monotonic() - started
                self.health_reports[name] = HealthReport.from_inspect(inspect)
                self.log(f"engine: {name} healthy {self.time_to_healthy[name]:.1f} s after start")
                return
            time.sleep(1)
        logs = self.api.logs(container_id, tail=30).decode(errors="replace")
        raise EngineError(f"container {name} failed to be in healthy state within {timeout_s:.0f} s:\n{logs}")

    # ---- update and delete ------------------------------------------------------------------------------

    def _run_dynamic(self, inputs: dict[str, Any]) -> None:
        """The live-config check, as its provider runs it during `up`, on this engine's container."""
        from components.docker.live_config import wait_until_live

        try:
            wait_until_live(self.sub.name(inputs["container"]), inputs["configId"], inputs["url"])
        except RuntimeError as error:
            raise EngineError(str(error)) from None

    def _update(self, deployed: Deployed, resource: Registered) -> None:
        if resource.type == DYNAMIC:
            self._run_dynamic(resource.inputs)
            deployed.resource = resource
            return
        inputs = resource.inputs
        self.api.update_container(
            deployed.docker_id,
            mem_limit=int(inputs["memory"]) * 1024 * 1024 if inputs.get("memory") else None,
            memswap_limit=int(inputs["memorySwap"]) * 1024 * 1024 if inputs.get("memorySwap") else None,
            restart_policy={"Name": inputs.get("restart", "no")},
        )
        deployed.resource = resource

    def _delete(self, deployed: Deployed) -> None:
        resource = deployed.resource
        if getattr(resource.opts, "retain_on_delete", None):
            self.log(f"engine: {resource.type} {resource.name} retained, not deleted")
            return
        if resource.type == CONTAINER:
            with contextlib.suppress(docker.errors.NotFound):
                grace = resource.inputs.get("destroyGraceSeconds")
                if grace:
                    # The provider stops the container with this timeout first, then removes it.
                    self.api.stop(deployed.docker_id, timeout=int(grace))
                self.api.remove_container(deployed.docker_id, force=True, v=True)
        elif resource.type == VOLUME:
            self.api.remove_volume(deployed.docker_id)
        elif resource.type == NETWORK:
            self._delete_network(resource.name, deployed.docker_id)

    def _delete_network(self, name: str, network_id: str | None) -> None:
        deadline = time.monotonic() + self.network_delete_timeout_s
        while True:
            try:
                self.api.remove_network(network_id)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as error:
                if "has active endpoints" not in str(error) or time.monotonic() > deadline:
                    raise EngineError(f"network {name} could not be deleted: {error.explanation}") from None
            time.sleep(0.5)


def _comparable(inputs: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(value) for key, value in inputs.items()}
