"""The gateway's own Tailscale node (tailnet-node mode)."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_tailscale as tailscale

from ..topology import NODE_CONTAINER, Node
from ..topology.node import ROLE
from .config_volumes import rendered_config, secret_environment
from .hardening import Health, container_options, hardened_container_args
from .networks import GatewayNetworks
from .pinned_image import PinnedImage

STATE_DIR = "/var/lib/tailscale"
SERVE_DIR = "/etc/tailscale-serve"
SERVE_FILE = "serve.json"
SERVE_PATH = f"{SERVE_DIR}/{SERVE_FILE}"
# The tailscale CLI's default socket: `docker exec tailnet-node tailscale status` works without flags. Its
# directory is a tmpfs (the root is read-only; containerboot's default, /tmp, would need a symlink here).
SOCKET_DIR = "/var/run/tailscale"
SOCKET = f"{SOCKET_DIR}/tailscaled.sock"
HEALTH_ADDR = "127.0.0.1:9002"
HEALTH = Health(
    test=["CMD", "wget", "-q", "-O", "/dev/null", f"http://{HEALTH_ADDR}/healthz"],
    interval="3s",
    timeout="3s",
    retries=5,
    start_period="60s",
)


class TailnetNode(pulumi.ComponentResource):
    """A Tailscale container that joins the tailnet as the gateway's node and serves HTTPS to Caddy.

    Guarantees:
    - it joins with a pre-authorized auth key tagged with the gateway tag, created for it by
      `tailscale.TailnetKey`; the key is a secret, reaches the container only as a secret
      environment variable, is single-use unless the settings say otherwise, and is never in a file;
    - its state lives in a named volume, so a restarted or replaced container is the same node;
    - it serves the rendered serve config (HTTPS on 443 for its own name, proxied to Caddy over the
      edge network, no Funnel) and publishes no host port; a new serve config is applied by the running
      node (containerboot watches the file), not by a restart;
    - on the edge network it has the fixed address the Caddyfile trusts for Tailscale's identity and
      capability headers (the top address of the pinned subnet, which Docker never hands out first);
    - userspace networking: no TUN device and no capabilities; hardened as `hardening.py` says;
    - with services on other tailnet machines, a SOCKS5 proxy into the tailnet, through which the edge
      reaches them. It listens only on the node's address on a network of its own (internal, not
      attachable) that the node and the edge alone join: a dial through it leaves from the node's pinned
      address, which the edge believes, so no other container may reach it. The tailnet policy grants the
      node only those machines' model ports.
    """

    container: docker.Container

    def __init__(
        self,
        name: str,
        node: Node,
        serve_json: str,
        networks: GatewayNetworks,
        image: PinnedImage,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tailnet-llm-gateway:tailscale:TailnetNode", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        tag = node.tag
        self.auth_key = tailscale.TailnetKey(
            f"{name}-auth-key",
            reusable=node.auth_key_reusable,
            ephemeral=False,
            preauthorized=True,
            tags=[tag],
            expiry=node.auth_key_expiry_days * 86400,
            description="tailnet-llm-gateway node",
            # An expired key is replaced on the next `up`; the node itself keeps its state volume.
            recreate_if_invalid="always",
            opts=child,
        )
        state = docker.Volume(f"{name}-state", name="tailnet-node-state", opts=child)

        settings_env = {
            "TS_HOSTNAME": node.hostname,
            "TS_STATE_DIR": STATE_DIR,
            "TS_SOCKET": SOCKET,
            # The key is needed only to join; later starts use the state volume.
            "TS_AUTH_ONCE": "true",
            "TS_USERSPACE": "true",
            "TS_SERVE_CONFIG": SERVE_PATH,
            "TS_EXTRA_ARGS": " ".join(
                [f"--advertise-tags={tag}", *([f"--login-server={node.login_server}"] if node.login_server else [])]
            ),
            "TS_ENABLE_HEALTH_CHECK": "true",
            "TS_LOCAL_ADDR_PORT": HEALTH_ADDR,
        }
        if node.socks5 is not None:
            # The edge dials services on other tailnet machines through this (userspace networking gives
            # containers no route into the tailnet). It listens on the node's address on the network it shares
            # with the edge alone (the name resolves there only), never on the edge network or loopback.
            settings_env["TS_SOCKS5_SERVER"] = str(node.socks5)
        envs = secret_environment({"TS_AUTHKEY": self.auth_key.key}, settings_env)
        # On the SOCKS5 proxy's own network, under the name it listens on.
        egress = (
            [docker.ContainerNetworksAdvancedArgs(name=networks.names[node.egress_network], aliases=[node.socks5.host])]
            if node.egress_network is not None and node.socks5 is not None
            else []
        )
        # tailscaled runs as root (below), whom the nproc limit does not bind; its memory limit holds.
        resources = node.resources
        serve = rendered_config(
            self,
            f"{name}-serve",
            f"{NODE_CONTAINER}-serve",
            SERVE_DIR,
            {SERVE_FILE: serve_json},
            ROLE,
            image.ref,
            image.image,
            resources.user,
        )
        self.container = docker.Container(
            name,
            name=NODE_CONTAINER,
            image=image.ref,
            envs=envs,
            # At its pinned address: the edge trusts Tailscale's identity headers from there only.
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=networks.names[node.network], ipv4_address=node.address),
                *egress,
            ],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=state.name, container_path=STATE_DIR),
                serve.mount,
            ],
            **hardened_container_args(
                ROLE,
                resources,
                tmpfs={"/tmp": "rw,noexec,nosuid,size=64m", SOCKET_DIR: "rw,noexec,nosuid,size=1m,mode=0700"},
                health=HEALTH,
                # The image's containerboot runs tailscaled as root and keeps node state in a
                # root-owned volume; it still gets no capabilities and no TUN device (userspace).
                root_because="tailscaled state volume is root-owned; no capabilities, userspace networking",
                # No config hash label: containerboot watches TS_SERVE_CONFIG and applies a rewritten serve
                # config in place, so a new route does not restart the node.
            ),
            opts=container_options(self, image.image, after=[serve.writer]),
        )
        self.register_outputs({"container": self.container.name})
