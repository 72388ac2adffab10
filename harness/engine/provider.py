"""The Pulumi engine and the Docker provider, played on a real Docker engine for registered resources.

There is no Pulumi CLI here, so the engine tests take what the program registers under mocks
(`harness.program_run.run_program`) and apply it the way `pulumi up` with pulumi-docker 5.2.0 would. The
provider's behaviour is taken from its source, kreuzwerker/terraform-provider-docker,
internal/provider/resource_docker_container_funcs.go and resource_docker_network_funcs.go:

- container create (harness/engine/docker_objects.py, with how networks are created); then each upload as a one-file tar
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

The stack's one dynamic resource (`tailnet_llm_gateway.docker.live_config`) runs its provider's code, against the
same engine, when its inputs change.

"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker

from harness.engine import diff
from harness.engine.docker_objects import (
    CONTAINER,
    DYNAMIC,
    NETWORK,
    REMOTE_IMAGE,
    VOLUME,
    EngineError,
    Substitutions,
    create_container,
    plain,
    purge,
    upload_tar,
)
from harness.engine.health import HealthReport
from harness.engine.networks import adopt_network, create_network, delete_network, network_lookup
from harness.program_run import ProgramRun, Registered

ENGINE_TYPES = (REMOTE_IMAGE, NETWORK, VOLUME, CONTAINER, DYNAMIC)
TEST_LABEL = "tailnet-llm-gateway.test-run"


@dataclass
class Deployed:
    resource: Registered
    docker_id: str | None
    # Created, but its create step failed: the next `up` replaces it, as the provider's taint does.
    tainted: bool = False


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
        self.sub = Substitutions(prefix, {TEST_LABEL: run_id}, dict(host_paths or {}), loopback, env=env)
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
        return network_lookup(self.api, self.sub, name)

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
        plan = {key: diff.step(self.state.get(key), resource) for key, resource in zip(keys, desired, strict=True)}
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
        purge(self.api, self.sub.label)
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
            if import_id:
                adopted = adopt_network(self.api, self.sub, resource, import_id)
                self.log(f"engine: adopted the existing network {inputs['name']}")
                return adopted
            return create_network(self.api, self.sub, inputs)
        if import_id:
            raise EngineError(f"import of {resource.type} is not part of this harness")
        if resource.type == DYNAMIC:
            self._run_dynamic(inputs)
            return None
        if resource.type == VOLUME:
            return self.api.create_volume(self.sub.name(inputs["name"]), labels=self.sub.label)["Name"]
        return self._create_container(inputs)

    def _create_container(self, inputs: dict[str, Any]) -> str:
        container_id = create_container(self.api, self.sub, inputs)
        try:
            self._upload_and_start(inputs["name"], container_id, inputs)
        except EngineError as error:
            raise EngineError(str(error), created_id=container_id) from None
        return container_id

    def _upload_and_start(self, name: str, container_id: str, inputs: dict[str, Any]) -> None:
        for upload in plain(inputs.get("uploads")) or []:
            try:
                self.api.put_archive(container_id, "/", upload_tar(upload))
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
        """The live-config step, as its provider runs it during `up`, on this engine's container: the running
        edge told to load its new Caddyfile, then asked which it serves."""
        from tailnet_llm_gateway.docker.live_config import wait_until_live

        try:
            container = self.sub.name(inputs["container"])
            wait_until_live(container, inputs["configId"], inputs["url"], inputs["caddyfile"], inputs["admin"])
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
            delete_network(self.api, resource.name, deployed.docker_id, self.network_delete_timeout_s)
