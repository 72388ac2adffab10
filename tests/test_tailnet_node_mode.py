"""Guarantees of tailnet-node mode: the gateway is its own Tailscale node and no host port faces the tailnet."""

from __future__ import annotations

import json

import pytest

from harness.program_run import ProgramRun, fake_digest, run_program, unwrap
from harness.stacks import stack_values
from policy.gateway_contract import ROOT_EXCEPTION_LABEL, Role
from tailnet_llm_gateway.images import TAILSCALE_IMAGE
from tailnet_llm_gateway.local_mode import LocalMode, with_overrides
from tailnet_llm_gateway.render.caddyfile.render import render_caddyfile
from tailnet_llm_gateway.render.tailscale_serve import render_serve_config
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import NODE_CONTAINER, build_topology
from tests.caddy_check import caddy_validate

KEY = "tailscale:index/tailnetKey:TailnetKey"


@pytest.fixture(scope="module")
def node_topology():
    return build_topology(Settings.from_mapping(stack_values("dev-node")))


@pytest.fixture(scope="module")
def node_run() -> ProgramRun:
    return run_program(stack_values("dev-node"), stack="dev-node")


def test_serve_config_serves_https_for_the_node_and_proxies_to_caddy(node_topology):
    config = json.loads(render_serve_config(node_topology))
    assert config["TCP"] == {"443": {"HTTPS": True}}, "the node would not terminate TLS on 443"
    assert config["Web"] == {
        "${TS_CERT_DOMAIN}:443": {"Handlers": {"/": {"Proxy": "http://tailnet-edge-site:8081"}}}
    }, "the node would not proxy to Caddy on the edge network"
    assert config["AllowFunnel"] == {"${TS_CERT_DOMAIN}:443": False}, "the gateway could be on the public internet"


def test_caddy_serves_plain_http_to_the_node_and_redirects_to_its_https_name(node_topology, tmp_path):
    text = render_caddyfile(node_topology, "dev-node")
    assert "http://:8081 {" in text and "tls " not in text, "Caddy would expect cert files in tailnet-node mode"
    base = "https://llm.tail0a1b2c.ts.net"
    redirect = f"redir * {base}/oauth2/start?rd={base}{{http.request.uri_escaped}} 302"
    assert redirect in text, "sign-in would not come back to the node's HTTPS name"
    result = caddy_validate(text, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_listen_mode_works_in_tailnet_node_mode(node_topology, tmp_path):
    from tailnet_llm_gateway.addresses import HostPort

    text = render_caddyfile(with_overrides(node_topology, LocalMode(listen=HostPort("127.0.0.1", 18099))), "dev-node")
    assert "http://127.0.0.1:18099 {" in text and "{scheme}://{hostport}/oauth2/start" in text, (
        "--listen would not serve plain HTTP on loopback in node mode"
    )
    assert caddy_validate(text, tmp_path).returncode == 0, "Caddy would refuse the node-mode --listen Caddyfile"


def test_no_container_publishes_anything_but_loopback(node_run):
    for name, container in node_run.containers.items():
        for port in container.inputs.get("ports", []):
            assert port.get("ip") == "127.0.0.1", f"{name} publishes {port} in tailnet-node mode"
    assert node_run.containers["tailnet-edge"].inputs.get("ports", []) == [], "Caddy would face the tailnet directly"
    assert node_run.containers[NODE_CONTAINER].inputs.get("ports", []) == [], "the node would publish a host port"


def test_auth_key_is_tagged_preauthorized_and_single_use(node_run):
    (key,) = node_run.of_type(KEY)
    assert key.inputs["tags"] == ["tag:llm-gateway"], "the node would join without the gateway tag"
    assert key.inputs["preauthorized"] is True, "the node would wait for manual approval"
    assert key.inputs["reusable"] is False, "a leaked key could join more machines as the gateway"
    assert key.inputs["ephemeral"] is False, "the node would vanish when the container stops"


def test_reusable_key_only_when_the_settings_say_so():
    values = stack_values("dev-node")
    values["node"]["authKeyReusable"] = True
    (key,) = run_program(values, stack="dev-node").of_type(KEY)
    assert key.inputs["reusable"] is True, "authKeyReusable from the settings was not applied"


def test_auth_key_reaches_the_node_only_as_a_secret(node_run):
    container = node_run.containers[NODE_CONTAINER]
    envs, secret = unwrap(container.inputs["envs"])
    key = next(e.split("=", 1)[1] for e in envs if e.startswith("TS_AUTHKEY="))
    assert secret, "the auth key would be plaintext in state"
    others = {k: v for k, v in container.inputs.items() if k != "envs"}
    assert key not in repr(others), "the auth key leaked into a file, command or label"
    joining = {"TS_EXTRA_ARGS=--advertise-tags=tag:llm-gateway", "TS_HOSTNAME=llm", "TS_USERSPACE=true"}
    assert joining <= set(envs), "the node would join without its tag, name or userspace networking"


def test_a_login_server_setting_points_the_node_at_that_control_server():
    values = stack_values("dev-node")
    values["node"] = {**values.get("node", {}), "loginServer": "https://headscale.example.com:8080/"}
    envs, _ = unwrap(run_program(values, stack="dev-node").containers[NODE_CONTAINER].inputs["envs"])
    extra = next(e for e in envs if e.startswith("TS_EXTRA_ARGS="))
    assert (
        extra == "TS_EXTRA_ARGS=--advertise-tags=tag:llm-gateway --login-server=https://headscale.example.com:8080"
    ), f"the node would join another control server than the settings name: {extra}"


def test_node_keeps_its_state_in_a_volume_and_serves_the_rendered_config(node_run, node_topology):
    container = node_run.containers[NODE_CONTAINER]
    assert {"volumeName": "tailnet-node-state", "containerPath": "/var/lib/tailscale"} in container.inputs["volumes"], (
        "a restarted node would join as a new device"
    )
    (serve,) = node_run.config_writers[Role.NODE].inputs["uploads"]
    assert serve["content"] == render_serve_config(node_topology), "the node would serve another config"
    envs, _ = unwrap(container.inputs["envs"])
    assert f"TS_SERVE_CONFIG={serve['file']}" in envs, "the node would not load the serve config"
    assert "uploads" not in container.inputs, "Docker refuses uploads into the node's read-only root"


def test_node_image_runs_from_its_resolved_digest(node_run):
    assert node_run.containers[NODE_CONTAINER].inputs["image"] == f"{TAILSCALE_IMAGE}@{fake_digest(TAILSCALE_IMAGE)}", (
        "the node would run a floating tag, not the resolved digest"
    )


def test_node_is_hardened_with_a_documented_root_exception(node_run):
    inputs = node_run.containers[NODE_CONTAINER].inputs
    assert inputs["capabilities"] == {"drops": ["ALL"]}, "tailscaled would keep NET_ADMIN"
    assert inputs["readOnly"] is True and "no-new-privileges:true" in inputs["securityOpts"], (
        "the node could change its image, or gain privileges"
    )
    labels = {label["label"]: label["value"] for label in inputs["labels"]}
    assert inputs["user"] == "0:0" and labels.get(ROOT_EXCEPTION_LABEL), "root without a recorded reason"
    assert "devices" not in inputs, "userspace networking needs no TUN device"


def test_client_url_is_the_nodes_name(node_run):
    assert node_run.exports["apiBaseUrl"] == "https://llm.tail0a1b2c.ts.net/llm/v1", (
        "clients would get another base URL than the node's name"
    )


def test_host_bind_mode_has_no_tailscale_node():
    run = run_program(stack_values("dev"))
    assert NODE_CONTAINER not in run.containers and not run.of_type(KEY), "host-bind would also join a node"
