"""Guarantees of the Pulumi program, asserted on the inputs it registers under mocks."""

from __future__ import annotations

import hashlib
import ipaddress
import re

import pulumi
import pytest

from harness.program_run import ProgramRun, fake_digest, run_program, unwrap
from harness.stacks import CLIENTS_STACK, clients_stack_values, stack_values
from policy.gateway_contract import CONFIG_HASH_LABEL, Role
from tailnet_llm_gateway.images import CADDY_IMAGE, LITELLM_IMAGE
from tailnet_llm_gateway.render.caddyfile.render import config_id, render_caddyfile
from tailnet_llm_gateway.render.gateway_auth import render_gateway_auth, render_gateway_clients, render_gateway_limits
from tailnet_llm_gateway.render.gateway_start import render_gateway_start
from tailnet_llm_gateway.render.litellm_config import render_litellm_config
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import EDGE_CONTAINER, build_topology

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
ACL = "tailscale:index/acl:Acl"
USER_KEY = "sk-user-chosen-key-0123456789abcdef"


@pytest.fixture(scope="module")
def dev_run() -> ProgramRun:
    return run_program(stack_values("dev"))


@pytest.fixture(scope="module")
def keyed_run() -> ProgramRun:
    return run_program(stack_values("dev"), secrets={"masterKey": USER_KEY})


@pytest.fixture(scope="module")
def clients_run() -> ProgramRun:
    return run_program(clients_stack_values(), stack=CLIENTS_STACK)


def test_program_registers_the_expected_resources_without_warnings(dev_run):
    registered = sorted((r.type, r.name) for r in dev_run.resources)
    assert registered == sorted(
        [
            ("tailnet-llm-gateway:index:GatewayStack", "gateway"),
            ("tailnet-llm-gateway:docker:Networks", "gateway-networks"),
            (NETWORK, "proxy-net"),
            (NETWORK, "backend"),
            (NETWORK, "frontend"),
            ("random:index/randomPassword:RandomPassword", "gateway-master-key"),
            ("random:index/randomPassword:RandomPassword", "gateway-edge-key"),
            ("tailnet-llm-gateway:docker:PinnedImage", "gateway-litellm-image"),
            ("tailnet-llm-gateway:docker:PinnedImage", "gateway-caddy-image"),
            ("docker:index/remoteImage:RemoteImage", "gateway-litellm-image"),
            ("docker:index/remoteImage:RemoteImage", "gateway-caddy-image"),
            ("tailnet-llm-gateway:docker:ModelGateway", "gateway-model-gateway"),
            ("docker:index/volume:Volume", "gateway-model-gateway-config"),
            (CONTAINER, "gateway-model-gateway-config-writer"),
            (CONTAINER, "gateway-model-gateway"),
            (CONTAINER, "gateway-model-gateway-2"),
            ("tailnet-llm-gateway:docker:ReverseProxy", "gateway-edge"),
            ("docker:index/volume:Volume", "gateway-edge-config"),
            (CONTAINER, "gateway-edge-config-writer"),
            ("docker:index/volume:Volume", "gateway-edge-keys"),
            (CONTAINER, "gateway-edge-keys-writer-edge"),
            (CONTAINER, "gateway-edge-keys-writer-master"),
            (CONTAINER, "gateway-edge"),
            ("pulumi-python:dynamic:Resource", "gateway-edge-live-config"),
            ("tailnet-llm-gateway:tailscale:TailnetPolicy", "gateway-tailnet-policy"),
            (ACL, "gateway-tailnet-policy"),
        ]
    ), "the program no longer creates exactly the dev topology"
    warnings = [r.getMessage() for r in dev_run.log if r.levelno >= 30] + [
        str(w.message) for w in dev_run.python_warnings
    ]
    assert warnings == [], f"the program warns: {warnings}"


def test_every_resource_is_owned_by_a_component(dev_run):
    for resource in dev_run.resources:
        if resource.type == "tailnet-llm-gateway:index:GatewayStack":
            continue
        assert resource.opts is not None and resource.opts.parent is not None, (
            f"{resource.type} {resource.name} has no parent: the component does not own it"
        )


def test_every_published_port_binds_loopback_or_the_tailnet_ip(dev_run):
    for name, container in dev_run.containers.items():
        for port in container.inputs.get("ports", []):
            ip = port.get("ip")
            assert ip, f"{name} publishes {port} on every interface (an empty ip means 0.0.0.0)"
            address = ipaddress.ip_address(ip)
            assert not address.is_unspecified, f"{name} publishes on {ip}: reachable from the LAN"
            assert address.is_loopback or ip == "100.101.102.103", f"{name} publishes on {ip}, off the tailnet"


def test_gateway_port_binds_loopback_only(dev_run):
    ports = dev_run.containers["model-gateway"].inputs["ports"]
    assert ports == [{"internal": 11435.0, "external": 11435.0, "ip": "127.0.0.1"}], (
        "LiteLLM would be reachable from the LAN, or host apps would lose localhost:11435"
    )


def test_caddy_publishes_443_on_the_tailnet_ip_only(dev_run):
    ports = dev_run.containers["tailnet-edge"].inputs["ports"]
    assert ports == [{"internal": 8443.0, "external": 443.0, "ip": "100.101.102.103"}], (
        "Caddy would be reachable outside the tailnet"
    )


def test_caddy_is_only_on_the_edge_network(dev_run):
    networks = [n["name"] for n in dev_run.containers["tailnet-edge"].inputs["networksAdvanced"]]
    assert networks == ["proxy-net"], "a second network would make Docker DNS hand Caddy other networks' addresses"


def test_caddy_shares_a_network_with_every_upstream_its_caddyfile_names(dev_run):
    caddy = dev_run.containers["tailnet-edge"]
    caddy_networks = {n["name"] for n in caddy.inputs["networksAdvanced"]}
    caddyfile = dev_run.rendered_file(Role.EDGE)
    upstream_hosts = set(re.findall(r"(?:reverse_proxy|forward_auth) ([a-z0-9.-]+):\d+", caddyfile))
    assert upstream_hosts == {"oauth2-proxy", "model-gateway", "dashboard", "open-webui"}, (
        "the Caddyfile names other upstreams than the dev stack's"
    )
    settings = stack_values("dev")["services"]
    for host in upstream_hosts:
        if host in dev_run.containers:  # a container this stack runs: trust what is registered
            attached = {n["name"] for n in dev_run.containers[host].inputs["networksAdvanced"] if host in n["aliases"]}
        else:  # a service run elsewhere: the settings say where it is
            attached = set(settings[host]["networks"])
        assert attached & caddy_networks, f"Caddy could not resolve {host}: no shared network"


def test_litellm_reaches_every_model_backend(dev_run):
    gateway_networks = {n["name"] for n in dev_run.containers["model-gateway"].inputs["networksAdvanced"]}
    values = stack_values("dev")
    for model, spec in values["models"].items():
        backend_networks = set(values["services"][spec["backend"]]["networks"])
        assert backend_networks & gateway_networks, f"LiteLLM could not reach {spec['backend']} for {model}"


def test_gateway_has_its_alias_on_the_edge_network(dev_run):
    attachments = dev_run.containers["model-gateway"].inputs["networksAdvanced"]
    assert {"name": "proxy-net", "aliases": ["model-gateway"]} in attachments, "Caddy could not resolve model-gateway"


def test_uploaded_files_are_exactly_the_renderers_output(dev_run):
    topology = build_topology(Settings.from_mapping(stack_values("dev")))
    assert dev_run.rendered_file(Role.EDGE) == render_caddyfile(topology, "dev"), (
        "Caddy would run something other than what `render` shows"
    )
    assert dev_run.rendered_files(Role.GATEWAY) == {
        "config.yaml": render_litellm_config(topology, "dev"),
        "gateway_auth.py": render_gateway_auth(topology, "dev"),
        "gateway_start.py": render_gateway_start(),
        "clients.json": render_gateway_clients(topology),
        "limits.json": render_gateway_limits(topology),
    }, "LiteLLM would run something other than what `render` shows"


@pytest.mark.parametrize(
    ("role", "container", "directory"),
    [(Role.EDGE, EDGE_CONTAINER, "/etc/caddy/rendered"), (Role.GATEWAY, "model-gateway", "/etc/litellm")],
)
def test_rendered_files_reach_read_only_services_through_a_config_writer(dev_run, role, container, directory):
    """Docker refuses any upload into a read-only root, and the provider always copies uploads to "/"."""
    service, writer = dev_run.containers[container].inputs, dev_run.config_writers[role].inputs
    assert "uploads" not in service, f"{container}'s uploads would be refused: its root is read-only"
    assert writer["readOnly"] is False and writer["uploads"][0]["file"].startswith(directory + "/"), (
        "the writer could not receive the upload"
    )
    assert writer["start"] is False and writer["mustRun"] is False and writer["networkMode"] == "none", (
        "the config writer would run, or have a network"
    )
    (volume,) = [v for v in writer["volumes"] if v["containerPath"] == directory]
    assert {"volumeName": volume["volumeName"], "containerPath": directory, "readOnly": True} in service["volumes"], (
        f"{container} would not see the file, or could change it"
    )


def _files_digest(files: dict[str, str]) -> str:
    # One file: the sha256 of its content (as since the first release). Several: of each name and content.
    if len(files) == 1:
        return hashlib.sha256(next(iter(files.values())).encode()).hexdigest()
    return hashlib.sha256(
        b"".join(n.encode() + b"\0" + c.encode() + b"\0" for n, c in sorted(files.items()))
    ).hexdigest()


@pytest.mark.parametrize("container", ["model-gateway", "model-gateway-2"])
def test_every_litellm_replica_carries_the_hash_of_its_rendered_files(dev_run, container):
    """LiteLLM reads its config only when it starts: new files must replace each replica."""
    # The client and limit tables are read again while LiteLLM runs: a change to them replaces nothing.
    reread = {"clients.json", "limits.json"}
    read_at_start = {n: c for n, c in dev_run.rendered_files(Role.GATEWAY).items() if n not in reread}
    digest = _files_digest(read_at_start)
    labels = {label["label"]: label["value"] for label in dev_run.containers[container].inputs["labels"]}
    assert labels[CONFIG_HASH_LABEL] == digest, (
        f"a new LiteLLM config would be written without replacing the running {container}"
    )


def test_the_edge_reloads_its_caddyfile_in_place_and_up_waits_for_it(dev_run):
    edge = dev_run.containers["tailnet-edge"].inputs
    labels = {label["label"] for label in edge["labels"]}
    assert CONFIG_HASH_LABEL not in labels, "a Caddyfile change would replace the running edge"
    assert "--watch" not in edge["command"], "Caddy's watcher stops for good at the first read that fails"
    (live,) = dev_run.of_type("pulumi-python:dynamic:Resource")
    caddyfile = dev_run.rendered_file(Role.EDGE)
    assert "\tadmin unix//tmp/caddy-admin.sock" in caddyfile.splitlines(), "the edge's admin API is not its own socket"
    assert (live.inputs["caddyfile"], live.inputs["admin"]) == (edge["command"][3], "unix//tmp/caddy-admin.sock"), (
        "`pulumi up` would not tell the running edge to load the file its container runs"
    )
    assert live.inputs["configId"] == config_id(dev_run.rendered_file(Role.EDGE)) == dev_run.exports["edgeConfigId"], (
        "`pulumi up` would not wait for the Caddyfile it wrote"
    )
    assert live.inputs["url"] == "http://127.0.0.1:8080/config-id", "up would ask the edge somewhere it does not answer"


def test_a_reload_hands_queued_connections_to_the_new_config_unless_the_kernel_cannot(dev_run):
    """Caddy binds each config's listener with SO_REUSEPORT and closes the old one: without
    net.ipv4.tcp_migrate_req the kernel resets connections still queued on it (seen through the real node: a
    502 during a route change under load). Settable off for kernels before 5.14, which lack it."""
    sysctls = dev_run.containers[EDGE_CONTAINER].inputs.get("sysctls")
    assert sysctls == {"net.ipv4.tcp_migrate_req": "1"}, f"the edge runs with sysctls {sysctls}"
    values = stack_values("dev")
    values["edge"] = {**values.get("edge", {}), "migrateConnectionsOnReload": False}
    off = run_program(values).containers[EDGE_CONTAINER].inputs.get("sysctls")
    assert not off, "the setting for older kernels does not leave the sysctl out"


def test_gateway_runs_one_granian_worker_by_default(dev_run):
    inputs = dev_run.containers["model-gateway"].inputs
    command = inputs["command"]
    assert inputs["entrypoints"] == ["python3", "/etc/litellm/gateway_start.py", "11435", "python3", "-m", "granian"], (
        "LiteLLM would run under another server, or without the launcher that stops it while it starts"
    )
    assert command[command.index("--workers") + 1] == "1", (
        "a second worker holds a second LiteLLM (about 300 MiB) and uvicorn's start-up could loop on 2 cores"
    )
    assert command[-1] == "litellm.proxy.proxy_server:app", "granian would serve another app"
    env, _ = unwrap(inputs["envs"])
    assert "CONFIG_FILE_PATH=/etc/litellm/config.yaml" in env, "LiteLLM would start without its config"


def test_each_container_runs_the_uploaded_config(dev_run):
    env, _ = unwrap(dev_run.containers["model-gateway"].inputs["envs"])
    assert "CONFIG_FILE_PATH=/etc/litellm/config.yaml" in env, "LiteLLM would not load the rendered config"
    assert dev_run.containers["tailnet-edge"].inputs["command"][3] == "/etc/caddy/rendered/Caddyfile", (
        "Caddy would not load the rendered Caddyfile"
    )


@pytest.mark.parametrize("run_name", ["dev_run", "keyed_run"])
def test_master_key_reaches_litellm_only_as_a_secret_and_the_edge_only_as_a_secret_file(request, run_name):
    run = request.getfixturevalue(run_name)
    key = run.exports["masterKey"]
    assert "masterKey" in run.secret_exports, "the master key would be a plaintext stack output"
    for name in ("model-gateway", "model-gateway-2"):
        container = run.containers[name]
        envs, secret = unwrap(container.inputs["envs"])
        assert secret and f"LITELLM_MASTER_KEY={key}" in envs, f"{name} would not get the key, or get it in plain"
        others = {k: v for k, v in container.inputs.items() if k != "envs"}
        assert key not in repr(others), f"the key leaked into another input of {name}"
        assert container.opts.additional_secret_outputs == ["envs"], (
            "state would hold the container's environment, with the key, in plain text"
        )
    edge = run.containers["tailnet-edge"].inputs
    assert key not in repr(edge), "the master key would be in the edge's inputs (its environment, a label)"
    master, secret = run.key_files()["master"]
    assert secret and master["content"] == key, "the edge's key file is not a secret"
    assert (master["permissions"], master["owner"]) == ("0400", edge["user"].split(":")[0]), (
        "other users of the edge's volume could read the key"
    )


def test_set_master_key_is_used_as_given(keyed_run):
    assert keyed_run.exports["masterKey"] == USER_KEY, "the master key set as a secret was not the one deployed"
    generated = [r.name for r in keyed_run.of_type("random:index/randomPassword:RandomPassword")]
    assert generated == ["gateway-edge-key"], f"a master key was generated anyway: {generated}"


@pytest.mark.parametrize("name", ["gateway-master-key", "gateway-edge-key"])
def test_generated_keys_are_strong(dev_run, name):
    (password,) = [r for r in dev_run.of_type("random:index/randomPassword:RandomPassword") if r.name == name]
    assert password.inputs["length"] >= 32, f"a short {name} could be guessed"
    assert dev_run.exports["masterKey"].startswith("sk-"), "LiteLLM expects master keys to start with sk-"


def _edge_key_files(run) -> dict[str, str]:
    return {name: upload["content"] for name, (upload, _) in run.key_files().items()}


def test_a_client_added_rewrites_no_other_key_file(clients_run):
    # Docker writes an upload in place: a key file being written reads empty for a moment, so a change to
    # one client's key must leave every other key file's writer exactly as it was (not replaced).
    values = clients_stack_values()
    values["clients"]["tablet"] = {}
    added = run_program(values, stack=CLIENTS_STACK)
    before, after = clients_run.key_writers, added.key_writers
    assert set(after) == {*before, "client-tablet"}, f"the new client's key file is missing: {sorted(after)}"
    for name, writer in before.items():
        assert (after[name].name, after[name].inputs) == (writer.name, writer.inputs), (
            f"adding a client would rewrite the key file {name}, which the edge reads for every request"
        )


def test_the_edge_holds_its_own_key_and_litellm_both_and_neither_in_plain_text(dev_run, clients_run):
    files = _edge_key_files(dev_run)
    gateway, secret = unwrap(dev_run.containers["model-gateway"].inputs["envs"])
    assert secret, "a key would sit in plain text in the state"
    assert f"TLG_EDGE_KEY={files['edge']}" in gateway, "LiteLLM would not know the edge's key"
    assert f"LITELLM_MASTER_KEY={files['edge']}" not in gateway, "the edge's key would be LiteLLM's admin key"
    # With no named clients the edge compares the master key (the one client's); with them it never holds it.
    assert f"LITELLM_MASTER_KEY={files['master']}" in gateway, "the edge could not check the one client's key"
    assert set(_edge_key_files(clients_run)) == {"edge", "client-ci", "client-laptop"}, "the edge holds the admin key"


@pytest.mark.parametrize(("container", "tag"), [("model-gateway", LITELLM_IMAGE), ("tailnet-edge", CADDY_IMAGE)])
def test_images_run_from_the_digest_resolved_for_their_exact_tag(dev_run, container, tag):
    image = dev_run.containers[container].inputs["image"]
    assert image == f"{tag}@{fake_digest(tag)}", f"{container} would run a floating tag, not the resolved digest"
    pulled = {r.inputs["name"] for r in dev_run.of_type("docker:index/remoteImage:RemoteImage")}
    assert image in pulled, "the image the container runs is not the one pulled"
    assert ("docker:index/getRegistryImage:getRegistryImage", {"name": tag}) in dev_run.invokes, (
        "the tag was not resolved to its registry digest"
    )


def test_a_digest_pinned_in_settings_is_used_without_a_lookup():
    values = stack_values("dev")
    pinned = f"{CADDY_IMAGE}@sha256:{'b' * 64}"
    values["edge"]["image"] = pinned
    run = run_program(values)
    assert run.containers["tailnet-edge"].inputs["image"] == pinned, "a digest pinned in settings was not used as it is"
    assert ("docker:index/getRegistryImage:getRegistryImage", {"name": CADDY_IMAGE}) not in run.invokes, (
        "a pinned digest was looked up again, needing the registry for nothing"
    )


@pytest.mark.parametrize("container", ["model-gateway", "tailnet-edge"])
def test_container_is_hardened(dev_run, container):
    inputs = dev_run.containers[container].inputs
    uid = inputs["user"].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"{container} would run as root"
    assert inputs["readOnly"] is True, f"{container} could modify its own image at run time"
    assert inputs["capabilities"]["drops"] == ["ALL"], f"{container} keeps Linux capabilities it does not need"
    assert "no-new-privileges:true" in inputs["securityOpts"], f"{container} could gain privileges via setuid"
    assert inputs.get("privileged") is False, "the container would be privileged"
    assert "networkMode" not in inputs, f"{container} would share the host network"
    assert inputs["memory"] > 0 and inputs["memorySwap"] == inputs["memory"], f"{container} has no memory limit"
    assert any(u["name"] == "nproc" and u["hard"] > 0 for u in inputs["ulimits"]), f"{container} has no process limit"
    assert inputs["restart"] == "unless-stopped", "the container would stay down after a crash or a reboot"
    assert inputs["logDriver"] == "json-file" and inputs["logOpts"] == {"max-size": "10m", "max-file": "3"}, (
        f"{container}'s logs could fill the disk"
    )
    assert inputs["tmpfs"] and "/tmp" in inputs["tmpfs"], f"{container} has nowhere to write temp files"
    for path, options in inputs["tmpfs"].items():
        assert f"uid={uid}," in options, f"{container} could not write {path}: a tmpfs is root-owned unless told"
    assert inputs["healthcheck"]["tests"][0] == "CMD", f"{container} has no healthcheck"
    mounts = repr(inputs.get("volumes", [])) + repr(inputs.get("mounts", []))
    assert "docker.sock" not in mounts, f"{container} could control the Docker host"
    replace_on = dev_run.containers[container].opts.replace_on_changes
    assert {"healthcheck", "tmpfs"} <= set(replace_on), "the provider would silently ignore healthcheck/tmpfs edits"


def test_gateway_healthcheck_hits_liveliness(dev_run):
    check = dev_run.containers["model-gateway"].inputs["healthcheck"]
    assert "('127.0.0.1',11435)" in check["tests"][-1] and "GET /health/liveliness " in check["tests"][-1], (
        "the healthcheck would not ask LiteLLM's liveliness endpoint"
    )


@pytest.mark.parametrize("container", ["model-gateway", "tailnet-edge"])
def test_first_health_probe_comes_within_seconds(dev_run, container):
    """Docker 20.10 has no start_interval: the first probe waits a whole interval, and `pulumi up` with it."""
    interval = dev_run.containers[container].inputs["healthcheck"]["interval"]
    assert interval.endswith("s") and float(interval[:-1]) <= 3, f"`pulumi up` would wait {interval} for {container}"


def test_caddy_mounts_tailscale_certs_read_only_and_keeps_nothing(dev_run):
    inputs = dev_run.containers["tailnet-edge"].inputs
    assert {"hostPath": "/srv/caddy/certs", "containerPath": "/etc/caddy/certs", "readOnly": True} in inputs[
        "volumes"
    ], "Caddy could not read the Tailscale cert, or could write to it"
    assert {"/config", "/data"} <= set(inputs["tmpfs"]), "Caddy could not write its config or data directory"
    assert not [v for v in inputs["volumes"] if v.get("containerPath") in ("/config", "/data")], (
        "a root-owned volume would shadow Caddy's writable directories"
    )


def test_caddy_keeps_its_file_capability_in_the_bounding_set(dev_run):
    """The caddy image's binary carries cap_net_bind_service=+ep: without it in the bounding set, exec fails."""
    caps = dev_run.containers["tailnet-edge"].inputs["capabilities"]
    assert caps == {"drops": ["ALL"], "adds": ["NET_BIND_SERVICE"]}, "Caddy's binary could not be executed"
    assert "no-new-privileges:true" in dev_run.containers["tailnet-edge"].inputs["securityOpts"], (
        "the kept capability could become effective"
    )
    assert "adds" not in dev_run.containers["model-gateway"].inputs["capabilities"], (
        "LiteLLM would keep a capability it does not need"
    )


def test_each_container_has_a_uid_of_its_own(dev_run):
    uids = [c.inputs["user"].split(":")[0] for c in dev_run.containers.values()]
    assert len(uids) == 3, f"expected the edge and two LiteLLM replicas, got {sorted(dev_run.containers)}"
    assert len(set(uids)) == len(uids), "the process limit counts per uid: two containers would share one"
    assert not {"65532", "65534", "1000"} & set(uids), "other images' or users' processes would count too"


def test_managed_network_is_created_with_its_subnet_and_gateway(dev_run):
    proxy = dev_run.one(NETWORK, "proxy-net")
    assert proxy.inputs["ipamConfigs"] == [{"subnet": "10.124.24.0/24", "gateway": "10.124.24.1"}], (
        "proxy-net would get a random subnet, or could not be adopted after a destroy"
    )


def test_managed_networks_outlive_the_stack(dev_run):
    """Other projects' containers join these networks; deleting them would fail (or cut those off)."""
    for network in dev_run.of_type(NETWORK):
        assert network.opts.retain_on_delete is True, f"pulumi destroy would fail on {network.name}'s other containers"
        assert network.opts.import_ is None, "a network that is not there would be imported"


def test_a_network_left_by_an_earlier_stack_is_adopted_not_duplicated():
    existing = {
        "proxy-net": {
            "name": "proxy-net",
            "id": "net-1234",
            "driver": "bridge",
            "ipamConfigs": [{"subnet": "10.124.24.0/24", "gateway": "10.124.24.1"}],
        }
    }
    run = run_program(stack_values("dev"), networks=existing.get)
    assert run.one(NETWORK, "proxy-net").opts.import_ == "net-1234", (
        "a second network named proxy-net would be created, and names would become ambiguous"
    )
    assert run.one(NETWORK, "backend").opts.import_ is None, "a network that is not there would be imported"


def test_a_different_network_of_the_same_name_is_refused_naming_the_setting():
    existing = {
        "proxy-net": {
            "name": "proxy-net",
            "id": "net-1234",
            "driver": "bridge",
            "ipamConfigs": [{"subnet": "172.30.0.0/16"}],
        }
    }
    with pytest.raises(pulumi.RunError) as caught:
        run_program(stack_values("dev"), networks=existing.get)
    assert "networks.proxy-net" in str(caught.value) and "172.30.0.0/16" in str(caught.value), (
        "the error does not name the setting and the existing subnet"
    )


def test_existing_network_is_looked_up_not_created():
    values = stack_values("dev")
    values["networks"]["backend"] = {"existing": True}
    run = run_program(values)
    assert not [r for r in run.of_type(NETWORK) if r.inputs["name"] == "backend"], (
        "an existing network would be created, and deleted by `pulumi destroy`"
    )
    assert ("docker:index/getNetwork:getNetwork", {"name": "backend"}) in run.invokes, (
        "an existing network was not looked up"
    )
    assert {"name": "backend", "aliases": ["model-gateway"]} in run.containers["model-gateway"].inputs[
        "networksAdvanced"
    ], "LiteLLM would not join the existing network under its name"


def test_a_caddyfile_change_rewrites_the_file_and_leaves_every_container_running(dev_run):
    values = stack_values("dev")
    values["routes"] = [r for r in values["routes"] if r["path"] != "/dash/*"]
    changed = run_program(values)
    # `uploads` are ForceNew in the Docker provider: new content is a new writer, which rewrites the file.
    assert dev_run.config_writers[Role.EDGE].inputs["uploads"] != changed.config_writers[Role.EDGE].inputs["uploads"], (
        "a Caddyfile edit would not reach the config writer"
    )
    for name in ("tailnet-edge", "model-gateway", "model-gateway-2"):
        assert dev_run.containers[name].inputs == changed.containers[name].inputs, (
            f"an edge change would replace {name}, cutting what it carries"
        )


@pytest.mark.parametrize(
    "operation",
    [
        lambda clients: clients["ci"].update(keyVersion=2),
        lambda clients: clients.update(tablet={}),
        lambda clients: clients.pop("ci"),
        lambda clients: clients["ci"].update(limits={"requestsPerMinute": 30, "concurrent": 2}),
    ],
    ids=["rotate-a-key", "add-a-client", "revoke-a-client", "set-a-limit"],
)
def test_a_client_change_rewrites_files_and_leaves_every_container_running(clients_run, operation):
    values = clients_stack_values()
    operation(values["clients"])
    values["routes"] = [r for r in values["routes"] if r["path"] != "/mcp/*" or "laptop" in values["clients"]]
    changed = run_program(values, stack=CLIENTS_STACK)
    for name, container in clients_run.containers.items():
        assert container.inputs == changed.containers[name].inputs, f"a client change would replace {name}"


def test_litellm_replicas_are_replaced_one_after_the_other_and_drained(dev_run):
    first, second = (dev_run.containers[n] for n in ("model-gateway", "model-gateway-2"))
    waits_for = [getattr(resource, "_name", None) for resource in second.opts.depends_on or []]
    assert "gateway-model-gateway" in waits_for, "both replicas would be replaced at once, leaving no LiteLLM to answer"
    for replica in (first, second):
        assert replica.inputs["destroyGraceSeconds"] == 300 and replica.inputs["stopSignal"] == "SIGTERM", (
            "a replaced replica would be removed at once, cutting its streams"
        )
    assert [p["external"] for p in first.inputs["ports"]] == [11435], "host apps would not find LiteLLM's port"
    assert second.inputs["ports"] == [{"internal": 11435.0, "external": 11436.0, "ip": "127.0.0.1"}], (
        "the second replica's metrics could not be read from the host, or it would take the first one's port"
    )


def test_stack_outputs_what_a_client_needs(dev_run):
    exports = dict(dev_run.exports)
    del exports["masterKey"]
    assert exports == {
        "apiBaseUrl": "https://gpu-box.tail0a1b2c.ts.net/llm/v1",
        "apiRoutes": {"/llm/*": "https://gpu-box.tail0a1b2c.ts.net/llm/v1"},
        "localApiUrl": "http://127.0.0.1:11435/v1",
        "models": ["local-chat", "local-embed"],
        "edgeConfigId": config_id(dev_run.rendered_file(Role.EDGE)),
    }, "clients and host apps would not learn where the API is"


def test_bad_settings_fail_before_anything_is_registered():
    values = stack_values("dev")
    values["routes"][0]["upstream"] = "grafana"
    with pytest.raises(pulumi.RunError) as caught:
        run_program(values)
    assert "routes[0].upstream" in str(caught.value), "the error does not name the bad setting"


def test_applied_policy_is_the_merged_policy_that_render_writes(dev_run, tmp_path):
    import subprocess
    import sys

    from harness.stacks import ROOT

    subprocess.run(
        [sys.executable, "-m", "tailnet_llm_gateway", "render", "--stack", "dev", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    (acl,) = dev_run.of_type(ACL)
    assert acl.inputs["acl"] == (tmp_path / "tailnet-policy.hujson").read_text(), (
        "Tailscale would get a different policy than the one rendered and checked"
    )


def test_policy_apply_never_overwrites_or_resets_by_default(dev_run):
    (acl,) = dev_run.of_type(ACL)
    assert acl.inputs["overwriteExistingContent"] is False, "the first apply would wipe the user's policy"
    assert acl.inputs["resetAclOnDestroy"] is False, "pulumi destroy would reset the tailnet policy"
    assert acl.opts.retain_on_delete is True, "pulumi destroy would delete the tailnet policy"


def test_overwrite_is_an_explicit_opt_in():
    values = stack_values("dev")
    values["tailnetPolicy"]["overwriteExisting"] = True
    (acl,) = run_program(values).of_type(ACL)
    assert acl.inputs["overwriteExistingContent"] is True, "overwriteExisting from the settings was not applied"


def test_tailscale_part_is_skipped_when_the_stack_disables_it():
    values = stack_values("dev")
    values["tailnetPolicy"]["manage"] = False
    run = run_program(values)
    assert not [r for r in run.resources if r.type.startswith("tailscale:") or ":tailscale:" in r.type], (
        "a stack without Tailscale credentials would fail"
    )
    assert not [token for token, _ in run.invokes if token.startswith("tailscale:")], (
        "a stack without Tailscale credentials would call the Tailscale API"
    )


def test_gateway_device_is_tagged_when_asked():
    values = stack_values("dev")
    values["tailnetPolicy"]["tagDevice"] = True
    run = run_program(values)
    (tags,) = run.of_type("tailscale:index/deviceTags:DeviceTags")
    assert tags.inputs == {"deviceId": "node-gpu-box.tail0a1b2c.ts.net", "tags": ["tag:llm-gateway"]}, (
        "the wrong device, or the wrong tag, would be tagged"
    )
    looked_up = [args["name"] for token, args in run.invokes if token == "tailscale:index/getDevice:getDevice"]
    assert looked_up == ["gpu-box.tail0a1b2c.ts.net"], "the wrong device would be tagged"


def test_failing_policy_test_stops_the_program_before_anything_is_registered():
    values = stack_values("dev")
    values["tailnetPolicy"]["tests"]["outsiders"] = ["bob@example.com"]  # bob is in group:llm-users
    with pytest.raises(pulumi.RunError) as caught:
        run_program(values)
    assert "policy test fails" in str(caught.value) and "bob@example.com" in str(caught.value), (
        "a failing policy test was not reported with its test"
    )
