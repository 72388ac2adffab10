"""A `pulumi up` step that waits until the running edge serves the Caddyfile just written, or fails.

The edge reloads its Caddyfile in place (`caddy run --watch`): the config writer rewrites the file and
Caddy loads it, gracefully. A Caddyfile Caddy refuses leaves the previous config serving, which is safe,
but `pulumi up` must not report success for it. This dynamic resource asks the running edge, on its
container-loopback health listener, which config it runs, until that is the new one; if Caddy refused it,
the step fails with Caddy's own message, and the edge keeps answering with the config it had.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

# How long Caddy may take to notice the file (it looks every second) and load it.
LIVE_TIMEOUT_S = 30


def _live_id(container: Any, url: str) -> str | None:
    code, output = container.exec_run(["wget", "-q", "-O", "-", url])
    return output.decode(errors="replace").strip() if code == 0 else None


def _refusal(container: Any, since: int) -> str | None:
    """Caddy's last complaint about loading a config, from its log since `since` (epoch seconds)."""
    found = None
    for line in container.logs(since=since).decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") == "error" and "config" in str(entry.get("msg", "")) + str(entry.get("logger", "")):
            found = str(entry.get("error") or entry.get("msg"))
    return found


def wait_until_live(container_name: str, config_id: str, url: str, timeout_s: float = LIVE_TIMEOUT_S) -> None:
    """Return once the named edge container serves `config_id`; raise naming Caddy's complaint if not."""
    import docker  # the Docker engine the stack deploys to, as `docker` on this host reaches it

    client = docker.from_env(timeout=60)
    try:
        container = client.containers.get(container_name)
        since = int(time.time()) - 1
        deadline = time.monotonic() + timeout_s
        live = _live_id(container, url)
        while live != config_id:
            if time.monotonic() > deadline:
                said = _refusal(container, since) or "nothing in its log"
                raise RuntimeError(
                    f"the edge ({container_name}) did not take the new Caddyfile {config_id} within "
                    f"{timeout_s:.0f} s and keeps serving {live or 'no answer'}; Caddy said: {said}"
                )
            time.sleep(0.5)
            live = _live_id(container, url)
    finally:
        client.close()


class _LiveConfigProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wait_until_live(props["container"], props["configId"], props["url"])
        return CreateResult(id_=f"{props['container']}-live-config", outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        wait_until_live(news["container"], news["configId"], news["url"])
        return UpdateResult(outs=news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # `written` changes whenever the file was written again, even with an id seen before (after a
        # refused config, the previous settings restored): then too the edge must be asked.
        changed = any(olds.get(key) != news.get(key) for key in ("container", "configId", "url", "written"))
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)


class LiveConfig(pulumi.dynamic.Resource):
    """Succeeds once the edge container serves the config with this id (see the module's docstring)."""

    config_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        container: pulumi.Input[str],
        config_id: str,
        url: str,
        written: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            _LiveConfigProvider(),
            name,
            {"container": container, "configId": config_id, "url": url, "written": written},
            opts,
        )
