"""Nothing a setting holds can inject into a rendered file.

Every string setting (found by walking the settings model, so a new one cannot be forgotten) is set to
hostile text: newlines, braces, quotes, Caddy placeholders (`{env.LITELLM_MASTER_KEY}`, `{$HOME}`),
directives, unicode. Each value is either refused with the usual one line naming the setting, or accepted,
and then every rendered file (the Caddyfile as Caddy itself adapts it, the LiteLLM config, its auth module,
the tailnet policy, the serve config) must be exactly the files of the same stack with a plain stand-in
value in its place: the hostile value sits where the stand-in sits, verbatim, and nowhere else, and adds
no directive, placeholder, line, key or statement.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union

import json5
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from harness.stacks import ROOT, clients_stack_values, remote_stack_values, stack_values, tailnet_apps_stack_values
from policy.gateway_contract import HOST_BIND, TAILNET_NODE, Role
from tailnet_llm_gateway.auth import MODES
from tailnet_llm_gateway.errors import SettingsError
from tailnet_llm_gateway.plan import Plan, build_plan
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.settings.model import Settings as SettingsModel
from tests.caddy_json import adapt

STAND_IN = "fuzzb0"
# Pieces of text that have broken config files: line and block ends, quoting, comments, placeholders of
# Caddy (run time and Caddyfile environment), a directive, whitespace, unicode that folds or reorders.
HOSTILE = [
    "\n",
    "\r\n\thandle /* {\n\t\trespond ok\n\t}\n",
    "}",
    "{",
    "{env.LITELLM_MASTER_KEY}",
    "{$HOME}",
    "{http.request.header.Cookie}",
    '"',
    "'",
    "`",
    "\\",
    " #",
    " import sso",
    "\t",
    "\x00",
    "\u2028",
    "\u202e",
    "İ",
    "é",
    "ｘ",
    "..",
    "/",
    "*",
    "%0a",
    ";",
    ":",
    "@",
]


@dataclass(frozen=True)
class Slot:
    """Where one string setting sits in a stack, how to set it, and the plain value that stands in for it."""

    # dev (host-bind), dev-node, clients (the clients' stack on a tailnet node), remote (dev with models
    # on two other tailnet machines) or apps (dev-node with its pages behind tailnet identity)
    base: str
    setting: str  # as error messages name it
    put: Callable[[dict, str], None]
    original: str
    stand_in: str
    # The forms in which a value appears in rendered files (itself; a prefix without /*; ...).
    forms: Callable[[str], list[str]] = lambda value: [value]
    # A fixed set of valid values (Literal settings): anything else is refused.
    choices: tuple[str, ...] = ()


def _route(values: dict, path: str) -> dict:
    return next(r for r in values["routes"] if r["path"] == path)


def _set(*keys: Any) -> Callable[[dict, str], None]:
    def put(values: dict, value: str) -> None:
        target = values
        for key in keys[:-1]:
            target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
        target[keys[-1]] = value

    return put


def _on_route(path: str, key: str, as_list: bool = False) -> Callable[[dict, str], None]:
    def put(values: dict, value: str) -> None:
        _route(values, path)[key] = [value] if as_list else value

    return put


def _in_list(path: str, key: str, index: int) -> Callable[[dict, str], None]:
    def put(values: dict, value: str) -> None:
        _route(values, path)[key][index] = value

    return put


def _new_service(values: dict, name: str) -> None:
    values["services"][name] = copy.deepcopy(values["services"]["dashboard"])
    _route(values, "/dash/*")["upstream"] = name


def _new_network(values: dict, name: str) -> None:
    values["networks"][name] = {}
    values["services"]["dashboard"]["networks"].append(name)


def _new_model(values: dict, name: str) -> None:
    values["models"][name] = {"backend": "llamacpp", "model": "local-chat"}


def _new_machine(values: dict, name: str) -> None:
    values["machines"][name] = {"address": "100.88.0.7"}
    values["services"]["llamacpp-gpu-2"]["machine"] = name


def _identity_field(values: dict, field: str) -> None:
    _route(values, "/*")["identityHeaders"] = {field: "X-Forwarded-Email"}


def _identity_header(values: dict, header: str) -> None:
    _route(values, "/*")["identityHeaders"]["email"] = header


def _new_client(values: dict, name: str) -> None:
    values["clients"][name] = {}


def _copy_header_source(values: dict, name: str) -> None:
    values["sso"]["copyHeaders"] = {name: "X-Forwarded-Email"}


def _copy_header_target(values: dict, name: str) -> None:
    values["sso"]["copyHeaders"] = {"X-Auth-Request-Email": name}


def _backend_service(values: dict, name: str) -> None:
    values["models"]["local-chat"]["backends"][0]["service"] = name


def _list_item(*keys: Any) -> Callable[[dict, str], None]:
    def put(values: dict, value: str) -> None:
        target = values
        for key in keys:
            target = target[key]
        target[0] = value

    return put


def _prefix_forms(value: str) -> list[str]:
    return [value, value.removesuffix("/*")]


def _client_forms(value: str) -> list[str]:
    return [value, "client_" + value.replace("-", "_"), "key_client_" + value.replace("-", "_")]


def _host_forms(value: str) -> list[str]:
    name = value.strip().lower().rstrip(".")
    return [name, name.split(".")[0]]


def _subnet_forms(value: str) -> list[str]:
    import ipaddress

    network = ipaddress.ip_network(value)
    return [str(network), str(list(network.hosts())[-1])]


def _header_forms(value: str) -> list[str]:
    # Caddy writes some header names as Go's http.CanonicalHeaderKey spells them.
    return [value, "-".join(part[:1].upper() + part[1:].lower() for part in value.split("-"))]


def _tag_forms(value: str) -> list[str]:
    return [value, value.removeprefix("tag:")]


SLOTS: dict[str, Slot] = {
    s.setting: s
    for s in [
        Slot("dev", "exposure", _set("exposure"), HOST_BIND, "", choices=(HOST_BIND, TAILNET_NODE)),
        Slot("dev", "tailnetHost", _set("tailnetHost"), "gpu-box.tail0a1b2c.ts.net", "fuzzb0.ts.net", _host_forms),
        Slot("dev", "tailnetIp", _set("tailnetIp"), "100.101.102.103", "100.101.102.104"),
        Slot("dev", "tls.mode", _set("tls", "mode"), "tailscale-cert-files", "", choices=("tailscale-cert-files",)),
        Slot("dev", "tls.certDir", _set("tls", "certDir"), "/srv/caddy/certs", "/srv/fuzzb0"),
        Slot("dev", "tls.certFile", _set("tls", "certFile"), "tailnet.crt", "fuzzb0.crt"),
        Slot("dev", "tls.keyFile", _set("tls", "keyFile"), "tailnet.key", "fuzzb0.key"),
        Slot(
            "dev-node",
            "node.image",
            _set("node", "image"),
            "tailscale/tailscale:v1.102.5",
            "tailscale/tailscale:v1.0.0",
        ),
        Slot(
            "dev-node",
            "node.loginServer",
            _set("node", "loginServer"),
            "https://headscale.example.com",
            "https://fuzzb0.example.com",
        ),
        Slot("dev", "networks.<key>", _new_network, "frontend", STAND_IN),
        Slot(
            "dev-node",
            "networks.*.subnet",
            _set("networks", "proxy-net", "subnet"),
            "10.124.24.0/24",
            "10.124.25.0/24",
            _subnet_forms,
        ),
        Slot("dev", "services.<key>", _new_service, "dashboard", STAND_IN),
        Slot(
            "dev", "services.*.networks[*]", _list_item("services", "dashboard", "networks"), "proxy-net", "proxy-net"
        ),
        Slot("dev", "services.*.host", _set("services", "dashboard", "host"), "dashboard", STAND_IN),
        Slot("remote", "machines.<key>", _new_machine, "gpu-2", STAND_IN),
        Slot("remote", "machines.*.address", _set("machines", "gpu-2", "address"), "100.88.0.2", "100.88.0.9"),
        Slot("remote", "services.*.machine", _set("services", "llamacpp-gpu-2", "machine"), "gpu-2", "gpu-2"),
        Slot("dev", "models.<key>", _new_model, "local-chat", STAND_IN),
        Slot("dev", "models.*.backend", _set("models", "local-embed", "backend"), "llamacpp-embed", "llamacpp-embed"),
        Slot("clients", "models.*.backends[*].service", _backend_service, "llamacpp", "llamacpp"),
        Slot("dev", "models.*.model", _set("models", "local-embed", "model"), "local-embed", STAND_IN),
        Slot("dev", "models.*.apiPath", _set("models", "local-embed", "apiPath"), "/v1", "/fuzzb0"),
        Slot("dev", "routes[*].path", _on_route("/dash/*", "path"), "/dash/*", "/fuzzb0/*", _prefix_forms),
        Slot("dev", "routes[*].upstream", _on_route("/dash/*", "upstream"), "dashboard", "dashboard"),
        Slot("dev", "routes[*].respond", _on_route("/healthz", "respond"), "ok", STAND_IN),
        Slot("dev", "routes[*].auth", _on_route("/dash/*", "auth"), "sso", "", choices=("sso",)),
        Slot(
            "clients",
            "routes[*].allowPaths[*]",
            _in_list("/mcp/*", "allowPaths", 1),
            "/messages/*",
            "/fuzzb0/*",
            _prefix_forms,
        ),
        Slot(
            "dev",
            "routes[*].keyHeaders[*]",
            _on_route("/llm/*", "keyHeaders", as_list=True),
            "x-api-key",
            "",
            choices=("authorization", "x-api-key", "api-key"),
        ),
        Slot(
            "dev",
            "routes[*].corsOrigins[*]",
            _on_route("/llm/*", "corsOrigins", as_list=True),
            "https://chat.example.com",
            "https://fuzzb0.example.com",
        ),
        Slot(
            "clients",
            "routes[*].capability",
            _on_route("/tsllm/*", "capability"),
            "llm.example.com/cap/x",
            "fuzzb0.example.com/cap/x",
            lambda value: [value, re.escape(value)],  # the edge matches it in a header, as a pattern
        ),
        Slot(
            "clients",
            "routes[*].audiences[*]",
            _on_route("/tsllm/*", "audiences", as_list=True),
            "group:llm-users",
            "group:fuzzb0",
        ),
        Slot("dev", "gateway.service", _set("gateway", "service"), "model-gateway", "model-gateway"),
        Slot(
            "dev",
            "gateway.hostBind",
            _set("gateway", "hostBind"),
            "127.0.0.1:11435",
            "127.0.0.1:11436",
            lambda value: [value, value.rsplit(":", 1)[-1]],  # the policy tests that its port stays closed
        ),
        Slot(
            "dev",
            "gateway.server",
            _set("gateway", "server"),
            "granian",
            "",
            choices=("granian", "uvicorn", "gunicorn"),
        ),
        Slot(
            "dev",
            "gateway.image",
            _set("gateway", "image"),
            "ghcr.io/berriai/litellm-non_root:v1.98.1",
            "ghcr.io/berriai/litellm-non_root:v1.0.0",
        ),
        Slot("dev", "gateway.resources.user", _set("gateway", "resources", "user"), "61002:61002", "61009:61009"),
        Slot("dev", "edge.network", _set(Role.EDGE, "network"), "proxy-net", "proxy-net"),
        Slot("dev", "edge.image", _set(Role.EDGE, "image"), "caddy:2.11.7", "caddy:2.11.6"),
        Slot("dev", "edge.resources.user", _set(Role.EDGE, "resources", "user"), "61001:61001", "61008:61008"),
        Slot("dev", "sso.service", _set("sso", "service"), "oauth2-proxy", "oauth2-proxy"),
        Slot("dev", "sso.authPath", _set("sso", "authPath"), "/oauth2/auth", "/fuzzb0"),
        Slot("dev", "sso.startPath", _set("sso", "startPath"), "/oauth2/start", "/oauth2/fuzzb0"),
        Slot("dev", "sso.copyHeaders.<key>", _copy_header_source, "X-Auth-Request-Email", "X-Fuzzb0", _header_forms),
        Slot("dev", "sso.copyHeaders.*", _copy_header_target, "X-Forwarded-Email", "X-Fuzzb0", _header_forms),
        Slot("dev", "tailnetPolicy.tag", _set("tailnetPolicy", "tag"), "tag:llm-gateway", "tag:fuzzb0", _tag_forms),
        Slot(
            "dev-node", "tailnetPolicy.owners[*]", _set("tailnetPolicy", "owners", 0), "autogroup:admin", "group:fuzzb0"
        ),
        Slot(
            "dev",
            "tailnetPolicy.audiences[*]",
            _list_item("tailnetPolicy", "audiences"),
            "group:llm-users",
            "group:llm-users",
        ),
        Slot(
            "dev",
            "tailnetPolicy.tests.members[*]",
            _list_item("tailnetPolicy", "tests", "members"),
            "alice@example.com",
            "alice@example.com",
        ),
        Slot(
            "dev",
            "tailnetPolicy.tests.outsiders[*]",
            _list_item("tailnetPolicy", "tests", "outsiders"),
            "guest@example.com",
            "fuzzb0@example.com",
        ),
        Slot(
            "dev",
            "tailnetPolicy.base",
            _set("tailnetPolicy", "base"),
            "tailnet/dev-base.hujson",
            "tailnet/dev-base.hujson",
        ),
        Slot(
            "apps", "routes[*].identityHeaders.<key>", _identity_field, "email", "", choices=("login", "email", "name")
        ),
        Slot(
            "apps",
            "routes[*].identityHeaders.*",
            _identity_header,
            "X-Forwarded-Email",
            "X-Fuzzb0",
            _header_forms,
        ),
        # A reason for the settings' readers: it reaches no rendered file.
        Slot(
            "apps",
            "routes[*].allowCrossSite",
            _on_route("/*", "allowCrossSite"),
            "a partner site posts forms here",
            f"{STAND_IN} posts forms here",
            lambda value: [],
        ),
        Slot("clients", "clients.<key>", _new_client, "ci", STAND_IN, _client_forms),
        Slot("clients", "clients.*.routes[*]", _list_item("clients", "ci", "routes"), "/llm/*", "/llm/*"),
        Slot("clients", "clients.*.models[*]", _list_item("clients", "ci", "models"), "local-chat", "local-chat"),
        Slot("dev", "stack", lambda values, value: None, "dev", STAND_IN),
    ]
}


def _string_settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every string (or choice of strings) the settings model holds, as a path with `*` for any item."""
    found = []
    for name, info in model.model_fields.items():
        found += _strings_in(info.annotation, f"{prefix}{info.alias or name}")
    return found


def _strings_in(annotation: Any, path: str) -> list[str]:
    while typing.get_origin(annotation) in (typing.Annotated, Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0]
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _string_settings(annotation, path + ".")
    if origin is dict:
        key, value = typing.get_args(annotation)
        return _strings_in(key, path + ".<key>") + _strings_in(value, path + ".*")
    if origin in (tuple, list):
        return _strings_in(typing.get_args(annotation)[0], path + "[*]")
    return [path] if annotation is str or origin is Literal else []


def test_every_string_setting_is_fuzzed():
    # A route's own keys are its auth mode's.
    mode_strings = {path for mode in MODES.values() for path in _string_settings(mode.Options, "routes[*].")}
    settings_strings = set(_string_settings(SettingsModel)) | mode_strings | {"stack"}
    assert settings_strings == set(SLOTS), (
        f"string settings not fuzzed: {sorted(settings_strings - set(SLOTS))}; "
        f"fuzzed but gone: {sorted(set(SLOTS) - settings_strings)}"
    )


# ---- rendering and comparing ---------------------------------------------------------------------------


@cache
def _base_values(base: str) -> str:
    if base == "remote":
        return json.dumps(remote_stack_values("dev"))
    if base == "apps":
        return json.dumps(tailnet_apps_stack_values())
    values = clients_stack_values() if base == "clients" else stack_values(base)
    return json.dumps(values)


def _values(slot: Slot, value: str) -> dict:
    values = json.loads(_base_values(slot.base))
    slot.put(values, value)
    return values


def _stack_name(slot: Slot, value: str) -> str:
    return value if slot.setting == "stack" else "fuzz"


def _render(slot: Slot, value: str) -> Plan:
    settings = Settings.from_mapping(_values(slot, value))
    return build_plan(settings, _stack_name(slot, value), ROOT)


def _swap(data: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(data, str):
        for hostile, stand_in in pairs:
            data = data.replace(hostile, stand_in)
        return data
    if isinstance(data, dict):
        return {_swap(k, pairs): _swap(v, pairs) for k, v in data.items()}
    if isinstance(data, list):
        return [_swap(item, pairs) for item in data]
    return data


def _module(text: str, pairs: list[tuple[str, str]]) -> str:
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = _swap(node.value, pairs)
    # A sorted tuple of names (the models) is sorted again after the swap: a name changes its place in it.
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
            node.elts.sort(key=lambda e: str(e.value) if isinstance(e, ast.Constant) else "")
    return ast.dump(tree)


def _by_json(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def _caddy(text: str, pairs: list[tuple[str, str]], work: Path) -> Any:
    # The adapted config names the test's own directory (its stand-in certificates): not a setting.
    # The id of the config (a hash of the whole file) differs with any value; what it is, is tested elsewhere.
    text = re.sub(r'respond /config-id "[0-9a-f]+" 200', 'respond /config-id "<id>" 200', text)
    config = _swap(_swap(adapt(text, work), [(str(work), "<work>")]), pairs)
    # Caddy orders the site's blocks by their paths; a path setting moves its block.
    for server in config["apps"]["http"]["servers"].values():
        server["routes"] = _by_json(server["routes"])
        for route in server["routes"]:
            for handler in route.get("handle", []):
                if "routes" in handler:
                    handler["routes"] = _by_json(handler["routes"])
    return config


def _comparable(plan: Plan, pairs: list[tuple[str, str]], work: Path) -> str:
    files = plan.files
    litellm = _swap(yaml.safe_load(files.litellm_config), pairs)
    litellm["model_list"] = _by_json(litellm["model_list"])
    comparable = {
        "Caddyfile": _caddy(files.caddyfile, pairs, work),
        "litellm.yaml": litellm,
        "gateway_auth.py": _module(files.gateway_auth, pairs),
        "clients.json": _swap(json.loads(files.gateway_clients), pairs),
        "tailnet-policy.hujson": _swap(json5.loads(files.tailnet_policy), pairs),
        "tailscale-serve.json": _swap(json.loads(plan.node.serve_config if plan.node else "null"), pairs),
    }
    return json.dumps(comparable, sort_keys=True)


@dataclass(frozen=True)
class StandIn:
    files: str  # comparable form
    text: str  # every rendered file as text, and the comparable form


_STAND_INS: dict[str, StandIn] = {}


def _stand_in(setting: str, work: Path) -> StandIn:
    if setting not in _STAND_INS:
        plan = _render(SLOTS[setting], SLOTS[setting].stand_in)
        comparable = _comparable(plan, [], work)
        _STAND_INS[setting] = StandIn(comparable, "\n".join([*plan.files_by_name().values(), comparable]))
    return _STAND_INS[setting]


def check(setting: str, value: str, work: Path) -> None:
    slot = SLOTS[setting]
    try:
        plan = _render(slot, value)
    except SettingsError as error:
        assert "\n" not in str(error) and "\r" not in str(error), f"{setting}={value!r}: a message of many lines"
        assert str(error).startswith("setting '"), f"{setting}={value!r}: the message names no setting: {error}"
        return
    if slot.choices:
        assert value in slot.choices, f"{setting}={value!r} was accepted, but is not one of {slot.choices}"
        return
    assert value.isprintable() and not any(c in value for c in '{}"`\\'), (
        f"{setting}={value!r} was accepted: it holds a line break, a placeholder brace or a quote"
    )
    pairs = sorted(zip(slot.forms(value), slot.forms(slot.stand_in), strict=True), key=lambda pair: -len(pair[0]))
    stand_in = _stand_in(setting, work)
    if any(hostile in stand_in.text for hostile, _ in pairs):
        return  # the value also occurs by chance elsewhere: swapping it back would not tell anything
    assert _comparable(plan, pairs, work) == stand_in.files, (
        f"{setting}={value!r}: the rendered files hold more (or less) than the value in its one place"
    )


# ---- the fuzz ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", sorted(SLOTS))
def test_hostile_text_in_a_setting_is_refused_or_rendered_only_where_it_belongs(setting, tmp_path_factory):
    slot = SLOTS[setting]
    work = tmp_path_factory.mktemp("fuzz")
    for piece in HOSTILE:
        for value in (piece, slot.original + piece, piece + slot.original):
            check(setting, value, work)


_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from("{}\"'`\\#$*%/:;@.\n\r\t İé"), st.characters(codec="utf-8")), max_size=12
)


@pytest.mark.parametrize("setting", sorted(SLOTS))
@settings(max_examples=12, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=_TEXT, where=st.sampled_from(["alone", "after", "before"]))
def test_generated_text_in_a_setting_is_refused_or_rendered_only_where_it_belongs(
    setting, text, where, tmp_path_factory
):
    slot = SLOTS[setting]
    value = {"alone": text, "after": slot.original + text, "before": text + slot.original}[where]
    check(setting, value, tmp_path_factory.mktemp("fuzz", numbered=True))
