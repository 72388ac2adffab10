"""The Caddy container: the tailnet-facing edge."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_docker as docker

from policy.gateway_contract import EDGE_KEY_FILE, HOST_BIND

from ..render.caddyfile.render import CONFIG_ID_PATH
from ..topology import CERT_MOUNT, EDGE_CONTAINER, EDGE_HEALTH_PORT, EDGE_HTTPS_PORT, EDGE_SITE_ALIAS, Edge, Site
from ..topology.edge import ROLE
from .config_volumes import rendered_config, secret_files
from .hardening import (
    Health,
    container_options,
    hardened_container_args,
    owned_tmpfs,
)
from .live_config import LiveConfig
from .networks import GatewayNetworks
from .pinned_image import PinnedImage

CONFIG_DIR = "/etc/caddy/rendered"
CADDYFILE_NAME = "Caddyfile"
CADDYFILE_PATH = f"{CONFIG_DIR}/{CADDYFILE_NAME}"
# Caddy answers its own health listener within milliseconds of starting: probe often and early.
HEALTH = Health(
    test=["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{EDGE_HEALTH_PORT}/healthz"],
    interval="2s",
    timeout="2s",
    retries=3,
    start_period="10s",
)

MIGRATE_SYSCTL = "net.ipv4.tcp_migrate_req"


class ReverseProxy(pulumi.ComponentResource):
    """Runs Caddy with the rendered Caddyfile, reachable from the tailnet and nowhere else.

    Guarantees:
    - host-bind: port 443 is published on the tailnet IP and nowhere else (never 0.0.0.0, `::` or
      empty), with the Tailscale cert directory mounted read-only; tailnet-node: no port is
      published at all, and the gateway's Tailscale node reaches Caddy over the edge network;
    - Caddy is on the edge network, and (with models on other machines in tailnet-node mode) on the node's
      SOCKS5 network, which only the two share; the node reaches Caddy by an alias of the edge network
      alone, so its requests always come from its pinned address there;
    - the Caddyfile is the renderer's output byte for byte, mounted read-only from a volume its config
      writer fills; once the writer is done, `pulumi up` tells the running Caddy to load it (`caddy reload`
      through its admin socket inside the container; a graceful reload: requests and streams in flight
      finish under the old config) and succeeds only once Caddy reports the new config's id (a config
      Caddy refuses fails the step, naming why, the old one keeps serving, and the next `pulumi up` loads
      the next file). Caddy never watches the file itself: its watcher stops for good at the first read
      that fails, which the writer's copy (the old file removed, the new one written) can cause;
    - Caddy keeps nothing: its config and data directories are tmpfs owned by its own uid (certificates
      come from files or from the Tailscale node, so there is nothing to persist); the keys the edge
      checks (each client's, or with no named clients the master key) and its own key toward LiteLLM are
      secret files (one a key, its uid's alone) in a volume it mounts read-only, read on every request:
      adding, rotating or revoking a key leaves Caddy running; its environment holds no secret;
    - when it is replaced itself (a new image), it finishes its requests first, up to the drain bound;
    - with models on other tailnet machines, it is LiteLLM's only way to them: one forwarder a machine's
      service on its network, answering only the edge's own key and passing no key on, health-checking the
      machine through a dialer on its loopback (which goes through the node's SOCKS5 proxy in
      tailnet-node mode);
    - hardened as `hardening.py` says, with a healthcheck on a container-loopback listener; the image's
      file capability stays in the bounding set so its binary can run, and is never effective.
    """

    container: docker.Container

    def __init__(
        self,
        name: str,
        edge: Edge,
        site: Site,
        caddyfile: str,
        config_id: str,
        keys: Mapping[str, pulumi.Input[str]],
        networks: GatewayNetworks,
        image: PinnedImage,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tailnet-llm-gateway:docker:ReverseProxy", name, {}, opts)
        resources = edge.resources
        config = rendered_config(
            self,
            f"{name}-config",
            "tailnet-edge-config",
            CONFIG_DIR,
            {CADDYFILE_NAME: caddyfile},
            ROLE,
            image.ref,
            image.image,
            resources.user,
        )
        assert EDGE_KEY_FILE in keys, "the edge needs its own key toward LiteLLM"
        key_files = secret_files(
            self, f"{name}-keys", "tailnet-edge-keys", edge.keys_dir, keys, image.ref, image.image, resources
        )
        envs = [f"{k}={v}" for k, v in sorted({"XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"}.items())]
        ports, volumes = [], [config.mount, key_files.mount]
        if site.exposure == HOST_BIND:
            # Caddy listens on an unprivileged port inside; the host side is the tailnet IP only.
            ports.append(
                docker.ContainerPortArgs(internal=EDGE_HTTPS_PORT, external=edge.https_port, ip=site.tailnet_ip)
            )
            volumes.append(
                docker.ContainerVolumeArgs(host_path=site.cert_dir, container_path=CERT_MOUNT, read_only=True)
            )
        # tailnet-node: no port at all; the node reaches Caddy over the edge network.
        self.container = docker.Container(
            name,
            name=EDGE_CONTAINER,
            image=image.ref,
            # A rewritten Caddyfile is loaded by the live-config step below (caddy reload), never by a watcher.
            command=["caddy", "run", "--config", CADDYFILE_PATH, "--adapter", "caddyfile"],
            envs=envs,
            ports=ports,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=networks.names[edge.network], aliases=[EDGE_CONTAINER, EDGE_SITE_ALIAS]
                ),
                # The node's SOCKS5 network, which it shares with the node alone.
                *([docker.ContainerNetworksAdvancedArgs(name=networks.names[n]) for n in [edge.egress_network] if n]),
            ],
            volumes=volumes,
            # Caddy binds each config's listener with SO_REUSEPORT and closes the old one on a reload; the kernel
            # resets the connections still queued on it unless it may move them to the new one.
            sysctls={MIGRATE_SYSCTL: "1"} if edge.migrate_on_reload else None,
            **hardened_container_args(
                ROLE,
                resources,
                # Caddy autosaves its adapted config under XDG_CONFIG_HOME and its instance id under
                # XDG_DATA_HOME; neither must persist, and both must be writable by Caddy's uid.
                tmpfs={
                    "/config": owned_tmpfs(resources, "16m"),
                    "/data": owned_tmpfs(resources, "16m"),
                    "/tmp": owned_tmpfs(resources, "16m"),
                },
                health=HEALTH,
                keep_bounding=image.file_capabilities,
                drain_s=edge.drain_s,
            ),
            opts=container_options(self, image.image, after=[config.writer, *key_files.writers]),
        )
        self.config_id = config_id
        self.live = LiveConfig(
            f"{name}-live-config",
            self.container.name,
            self.config_id,
            f"http://127.0.0.1:{EDGE_HEALTH_PORT}{CONFIG_ID_PATH}",
            config.writer.id,
            caddyfile=CADDYFILE_PATH,
            admin=f"unix/{edge.admin_socket}",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[config.writer, self.container]),
        )
        self.register_outputs({"container": self.container.name, "configId": self.config_id})
