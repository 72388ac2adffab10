"""Guarantees of the settings model: every bad setting fails before anything runs, naming the setting."""

from __future__ import annotations

import pytest

from harness.stacks import write_stack
from policy.gateway_contract import TAILNET_NODE
from tailnet_llm_gateway.errors import SettingsError
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import build_topology


def _error(values: dict) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        build_topology(Settings.from_mapping(values))
    return caught.value


def test_dev_stack_settings_are_valid(dev_values):
    settings = Settings.from_mapping(dev_values)
    assert settings.tailnet_host == "gpu-box.tail0a1b2c.ts.net", "the dev stack no longer mirrors the replaced host"
    assert settings.gateway.host_bind == "127.0.0.1:11435", "host apps would lose localhost:11435"


def test_missing_tailnet_host_is_named(dev_values):
    del dev_values["tailnetHost"]
    error = _error(dev_values)
    assert error.setting == "tailnetHost" and "required" in error.problem, "a stack without a host name would render"


@pytest.mark.parametrize("address", ["192.168.1.20", "10.0.0.5", "8.8.8.8", "fd00::1", "not-an-ip"])
def test_tailnet_ip_outside_tailscale_ranges_is_refused(dev_values, address):
    dev_values["tailnetIp"] = address
    error = _error(dev_values)
    assert error.setting == "tailnetIp", f"Caddy would publish 443 on {address}, outside the tailnet"
    assert "Tailscale address" in error.problem, "the error does not say what kind of address is needed"


@pytest.mark.parametrize("address", ["0.0.0.0", "::", ""])
def test_tailnet_ip_that_binds_every_interface_is_refused(dev_values, address):
    dev_values["tailnetIp"] = address
    error = _error(dev_values)
    assert error.setting == "tailnetIp" and "every interface" in error.problem, (
        "an empty or wildcard bind would publish 443 on the LAN, as compose once did"
    )


def test_tailscale_ipv6_address_is_accepted(dev_values):
    dev_values["tailnetIp"] = "fd7a:115c:a1e0::1234"
    assert Settings.from_mapping(dev_values).tailnet_ip == "fd7a:115c:a1e0::1234", (
        "an IPv6 tailnet address was refused or changed"
    )


@pytest.mark.parametrize("bind", ["0.0.0.0:11435", "[::]:11435"])
def test_gateway_bind_on_every_interface_is_refused(dev_values, bind):
    dev_values["gateway"]["hostBind"] = bind
    error = _error(dev_values)
    assert error.setting == "gateway.hostBind", "LiteLLM would be reachable from the LAN"
    assert "every interface" in error.problem, "the error does not say why the bind is unsafe"


def test_gateway_bind_on_a_lan_address_is_refused(dev_values):
    dev_values["gateway"]["hostBind"] = "192.168.1.20:11435"
    error = _error(dev_values)
    assert error.setting == "gateway.hostBind" and "loopback" in error.problem, (
        "LiteLLM would be reachable from the LAN"
    )


def test_route_to_unknown_service_is_refused(dev_values):
    dev_values["routes"][3]["upstream"] = "grafana"
    error = _error(dev_values)
    assert error.setting == "routes[3].upstream" and "not a declared service" in error.problem, (
        "Caddy would proxy to a name nothing answers"
    )


def test_two_routes_with_the_same_path_are_refused(dev_values):
    dev_values["routes"].append({"path": "/dash/*", "upstream": "open-webui", "auth": "sso"})
    error = _error(dev_values)
    assert error.setting == "routes[5].path" and "routes[3]" in error.problem, "one of the two routes would be dead"


def test_path_without_leading_slash_is_refused(dev_values):
    dev_values["routes"][3]["path"] = "dash/*"
    error = _error(dev_values)
    assert error.setting == "routes[3].path" and "must be an exact path like /healthz" in error.problem, (
        "a path without a leading slash is not named"
    )


def test_model_with_undeclared_backend_is_refused(dev_values):
    dev_values["models"]["local-chat"]["backend"] = "vllm"
    error = _error(dev_values)
    assert error.setting == "models.local-chat.backend", "LiteLLM would send requests to a name nothing answers"


def test_model_backend_unreachable_from_the_gateway_is_refused(dev_values):
    dev_values["services"]["llamacpp"]["networks"] = ["proxy-net"]
    dev_values["services"]["model-gateway"]["networks"] = ["frontend", "backend"]
    dev_values["routes"] = [r for r in dev_values["routes"] if r.get("upstream") != "model-gateway"]
    error = _error(dev_values)
    assert error.setting == "models.local-chat.backend" and "shares no network" in error.problem, (
        "an unreachable backend is not named"
    )


def test_upstream_not_on_the_edge_network_is_refused(dev_values):
    dev_values["services"]["model-gateway"]["networks"] = ["frontend", "backend"]
    error = _error(dev_values)
    assert error.setting == "routes[2].upstream" and "proxy-net" in error.problem, (
        "Caddy could not resolve model-gateway, the replaced system's outage"
    )


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ((), "tailnetHosts"),
        (("gateway",), "hostbind"),
        (("routes", 0), "stripprefix"),
        (("services", "llamacpp"), "prot"),
    ],
)
def test_unknown_settings_key_is_refused(dev_values, where, key):
    target = dev_values
    for part in where:
        target = target[part]
    target[key] = "x"
    error = _error(dev_values)
    assert key in error.setting and "unknown setting" in error.problem, f"the typo {key!r} would be silently ignored"


def test_plain_text_master_key_is_refused(tmp_path, dev_values):
    path = write_stack(tmp_path, "leaky", dev_values, {"tailnet-llm-gateway:masterKey": "sk-plaintext"})
    with pytest.raises(SettingsError) as caught:
        Settings.from_stack_file(path)
    assert caught.value.setting == "masterKey", "the master key would sit in plaintext in the stack file"


def test_secure_master_key_is_not_needed_to_render(tmp_path, dev_values):
    path = write_stack(tmp_path, "sealed", dev_values, {"tailnet-llm-gateway:masterKey": {"secure": "v1:abc"}})
    assert Settings.from_stack_file(path) == Settings.from_mapping(dev_values), "a secure: value broke rendering"


def test_other_namespaces_are_left_to_their_providers(tmp_path, dev_values):
    path = write_stack(tmp_path, "prov", dev_values, {"docker:host": "unix:///var/run/docker.sock"})
    assert Settings.from_stack_file(path) == Settings.from_mapping(dev_values), (
        "a stack file with other namespaces' keys read differently"
    )


def test_key_without_namespace_is_refused(tmp_path, dev_values):
    path = write_stack(tmp_path, "bare", dev_values, {"tailnetHost": "x"})
    with pytest.raises(SettingsError) as caught:
        Settings.from_stack_file(path)
    assert caught.value.setting == "tailnetHost" and "namespace" in caught.value.problem, (
        "a key without a namespace is not named"
    )


def test_malformed_yaml_is_a_settings_error(tmp_path):
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config: [unclosed\n")
    with pytest.raises(SettingsError) as caught:
        Settings.from_stack_file(path)
    assert "not valid YAML" in caught.value.problem, "a YAML mistake is not told as one"


def test_pulumi_config_and_stack_file_give_the_same_settings(dev_values, monkeypatch):
    """The engine passes structured values as JSON text and scalars as text; both loaders agree."""
    import json

    import pulumi

    bag = {f"tailnet-llm-gateway:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in dev_values.items()}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(bag))
    pulumi.runtime.set_all_config({}, [])
    assert Settings.from_pulumi_config() == Settings.from_mapping(dev_values), (
        "pulumi up and the render CLI would see different settings"
    )


def test_pulumi_config_refuses_a_master_key_that_is_not_secret(dev_values, monkeypatch):
    import json

    import pulumi

    bag = {f"tailnet-llm-gateway:{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in dev_values.items()}
    bag["tailnet-llm-gateway:masterKey"] = "sk-plain"
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(bag))
    pulumi.runtime.set_all_config({}, [])
    with pytest.raises(SettingsError) as caught:
        Settings.from_pulumi_config()
    assert caught.value.setting == "masterKey", "a plain-text master key is not named"


@pytest.mark.parametrize(
    "image", ["caddy", "caddy:latest", "caddy:2", "caddy:2.11", "ghcr.io/berriai/litellm:main-stable"]
)
def test_floating_image_tags_are_refused(dev_values, image):
    dev_values["edge"]["image"] = image
    error = _error(dev_values)
    assert error.setting == "edge.image", f"{image} would move under the stack between deploys"


def test_pinned_digest_image_is_accepted(dev_values):
    dev_values["edge"]["image"] = "caddy:2.11.7@sha256:" + "a" * 64
    assert Settings.from_mapping(dev_values).edge.image_ref.digest == "sha256:" + "a" * 64, (
        "a digest pinned in settings was dropped"
    )


@pytest.mark.parametrize("audience", ["*", "autogroup:danger-all", "autogroup:internet"])
def test_tailnet_audience_may_not_be_everyone(dev_values, audience):
    dev_values["tailnetPolicy"]["audiences"] = [audience]
    error = _error(dev_values)
    assert error.setting.startswith("tailnetPolicy.audiences"), f"{audience} would open the gateway to everyone"


@pytest.mark.parametrize("identity", ["group:llm-users", "autogroup:member", "alice"])
def test_policy_test_identities_are_users_or_tags(dev_values, identity):
    dev_values["tailnetPolicy"]["tests"]["members"] = [identity]
    error = _error(dev_values)
    assert error.setting.startswith("tailnetPolicy.tests.members"), f"{identity} cannot be a test source"


@pytest.mark.parametrize("path", ["/etc/tailscale/policy.hujson", "../outside.hujson"])
def test_policy_base_stays_inside_the_repository(dev_values, path):
    dev_values["tailnetPolicy"]["base"] = path
    error = _error(dev_values)
    assert error.setting == "tailnetPolicy.base", "the policy base could come from outside the reviewed repository"


def test_host_bind_needs_the_tailnet_ip(dev_values):
    del dev_values["tailnetIp"]
    error = _error(dev_values)
    assert error.setting == "tailnetIp" and "host-bind" in error.problem, "Caddy would publish 443 on no address"


def test_host_bind_needs_the_cert_files(dev_values):
    del dev_values["tls"]
    error = _error(dev_values)
    assert error.setting == "tls", "Caddy would start without a certificate"


def test_tailnet_node_refuses_host_bind_settings(dev_values):
    dev_values["exposure"] = TAILNET_NODE
    error = _error(dev_values)
    assert error.setting == "tailnetIp" and "host-bind" in error.problem, "a setting with no effect would be accepted"


def test_new_stacks_default_to_tailnet_node(dev_values):
    for key in ("exposure", "tailnetIp", "tls"):
        del dev_values[key]
    assert Settings.from_mapping(dev_values).exposure == TAILNET_NODE, (
        "a new stack would not get its own tailnet node by default"
    )


def test_unknown_exposure_is_refused(dev_values):
    dev_values["exposure"] = "funnel"
    assert _error(dev_values).setting == "exposure", "the gateway could be put on the public internet by a typo"


@pytest.mark.parametrize("subnet", ["172.24.0.0/16", "172.17.5.0/24", "192.168.48.0/20", "172.16.0.0/12"])
def test_subnet_inside_dockers_default_pools_is_refused(dev_values, subnet):
    dev_values["networks"]["proxy-net"]["subnet"] = subnet
    error = _error(dev_values)
    assert error.setting == "networks.proxy-net.subnet" and "default address pools" in error.problem, (
        "proxy-net would collide with a network Docker addresses itself ('Pool overlaps')"
    )


def test_dev_subnet_lies_outside_dockers_default_pools(dev_values):
    topology = build_topology(Settings.from_mapping(dev_values))
    proxy = next(n for n in topology.networks if n.name == "proxy-net")
    assert (proxy.subnet, proxy.gateway) == ("10.124.24.0/24", "10.124.24.1"), (
        "proxy-net would not get the dev stack's subnet and gateway"
    )


@pytest.mark.parametrize("user", ["65534:65534", "65532:65532", "1000:1000", "33:33"])
def test_shared_uid_is_refused(dev_values, user):
    dev_values["gateway"]["resources"] = {"user": user}
    error = _error(dev_values)
    assert error.setting == "gateway.resources.user" and "shared" in error.problem, (
        "the process limit would count other images' or users' processes"
    )


def test_edge_and_gateway_with_the_same_uid_are_refused(dev_values):
    dev_values["edge"]["resources"] = {"user": "61002:61002"}
    error = _error(dev_values)
    assert error.setting == "edge.resources.user" and "gateway.resources.user" in error.problem, (
        "one container's processes would count against the other's limit"
    )
