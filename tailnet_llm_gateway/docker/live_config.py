"""A `pulumi up` step that has the running edge load the Caddyfile just written, and fails if it does not.

The config writer rewrites the edge's Caddyfile in its volume; then this dynamic resource tells the running
Caddy to load it (`caddy reload` with `docker exec`, through Caddy's admin API on a unix socket inside the
container) and asks the edge, on its container-loopback health listener, which config it runs, until that is
the new one. Caddy loads a config gracefully (requests and streams in flight finish under the old one). A
Caddyfile Caddy refuses leaves the previous config serving, which is safe, but `pulumi up` must not report
success for it: the step fails with Caddy's own message, and the next `pulumi up` loads the next file.

Why not `caddy run --watch`: Caddy's watcher (cmd/main.go, watchConfigFile) returns for good at the first
poll that cannot load the file, and the writer's copy removes the old file before writing the new one, so a
poll in that instant (or a Caddyfile Caddy refuses) would leave the edge deaf to every later change.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

# How long the edge may take to answer with the new config (a container just started: its admin socket).
LIVE_TIMEOUT_S = 30
# What `caddy reload` says when Caddy refused the config (rather than: not listening yet).
_REFUSED = "responded with error"


def _live_id(container: Any, url: str) -> str | None:
    code, output = container.exec_run(["wget", "-q", "-O", "-", url])
    return output.decode(errors="replace").strip() if code == 0 else None


def _reload(container: Any, caddyfile: str, admin: str) -> str | None:
    """Have the running Caddy load the file; None, or what Caddy said."""
    argv = ["caddy", "reload", "--config", caddyfile, "--adapter", "caddyfile", "--address", admin]
    code, output = container.exec_run(argv)
    if code == 0:
        return None
    text = output.decode(errors="replace").strip()
    # Caddy logs JSON lines: its error line says why, the others how far it got.
    errors = [str(e.get("msg", "")) for e in _json_lines(text) if e.get("level") == "error"]
    return errors[-1] if errors else text


def _json_lines(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _refusal(container: Any, since: int) -> str | None:
    """Caddy's last complaint about loading a config, from its log since `since` (epoch seconds)."""
    found = None
    for entry in _json_lines(container.logs(since=since).decode(errors="replace")):
        if entry.get("level") == "error" and "config" in str(entry.get("msg", "")) + str(entry.get("logger", "")):
            found = str(entry.get("error") or entry.get("msg"))
    return found


def wait_until_live(
    container_name: str, config_id: str, url: str, caddyfile: str, admin: str, timeout_s: float = LIVE_TIMEOUT_S
) -> None:
    """Have the named edge container load `caddyfile` and return once it serves `config_id`; raise naming
    Caddy's complaint if it does not."""
    import docker  # the Docker engine the stack deploys to, as `docker` on this host reaches it

    client = docker.from_env(timeout=60)
    try:
        container = client.containers.get(container_name)
        since = int(time.time()) - 1
        deadline = time.monotonic() + timeout_s
        live, said = _live_id(container, url), None
        while live != config_id:
            said = _reload(container, caddyfile, admin)
            live = _live_id(container, url)
            if live == config_id:
                break
            if time.monotonic() > deadline or (said is not None and _REFUSED in said):
                said = said or _refusal(container, since) or "nothing in its log"
                raise RuntimeError(
                    f"the edge ({container_name}) did not take the new Caddyfile {config_id} within "
                    f"{timeout_s:.0f} s and keeps serving {live or 'no answer'}; Caddy said: {said}"
                )
            time.sleep(0.5)
    finally:
        client.close()


class _LiveConfigProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        wait_until_live(props["container"], props["configId"], props["url"], props["caddyfile"], props["admin"])
        return CreateResult(id_=f"{props['container']}-live-config", outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        wait_until_live(news["container"], news["configId"], news["url"], news["caddyfile"], news["admin"])
        return UpdateResult(outs=news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # `written` changes whenever the file was written again, even with an id seen before (after a
        # refused config, the previous settings restored): then too the edge must be asked.
        keys = ("container", "configId", "url", "written", "caddyfile", "admin")
        changed = any(olds.get(key) != news.get(key) for key in keys)
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
        caddyfile: str,
        admin: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"container": container, "configId": config_id, "url": url, "written": written}
        super().__init__(_LiveConfigProvider(), name, {**props, "caddyfile": caddyfile, "admin": admin}, opts)
