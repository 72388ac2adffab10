"""Where settings come from: a stack file (`Pulumi.<stack>.yaml`) or the engine's config bag.

Every key is checked, whatever its namespace: this project's keys go to the settings model, the
providers' keys must be keys those providers know, and any other namespace is a typo. Secrets
(`masterKey`) must be secure values and never reach the settings model. A YAML mistake names the file,
line and column.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import SettingsError
from .messages import did_you_mean

PROJECT = "tailnet-llm-gateway"
# Keys the settings model does not hold, but a stack file may carry. They must be `secure:` values.
SECRET_KEYS = frozenset({"masterKey"})
# Each client's own key, one `secure:` value per client name (`pulumi config set --secret --path
# clientKeys.<name> <key>`). Only the names reach the settings, to check them; the keys stay secrets.
CLIENT_KEYS = "clientKeys"
# The configuration keys of the providers this program uses (pulumi_docker and pulumi_tailscale's
# config/vars.py; a test keeps these equal), and the engine's own.
PROVIDER_KEYS = {
    "docker": frozenset(
        {
            "host",
            "context",
            "caMaterial",
            "certMaterial",
            "keyMaterial",
            "certPath",
            "sshOpts",
            "registryAuth",
            "disableDockerDaemonCheck",
        }
    ),
    "tailscale": frozenset(
        {
            "apiKey",
            "oauthClientId",
            "oauthClientSecret",
            "tailnet",
            "baseUrl",
            "scopes",
            "identityToken",
            "identityTokenEnvironmentVariableName",
            "audience",
            "userAgent",
        }
    ),
    "pulumi": frozenset({"disable-default-providers", "tags"}),
}
# The top-level keys of a stack settings file (pulumi docs, stack-settings-file).
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")

IsSecret = Callable[[str, Any], bool]


def project_values(config: Mapping[str, Any], project: str, is_secret: IsSecret) -> dict[str, Any]:
    """This project's settings without their namespace; every other key checked and dropped."""
    values: dict[str, Any] = {}
    namespaces = [project, *PROVIDER_KEYS]
    client_keys: list[str] = []
    for full_key, value in config.items():
        namespace, _, key = str(full_key).partition(":")
        if not key:
            raise SettingsError(str(full_key), f"config keys need a namespace, such as {project}:{full_key}")
        if namespace == project:
            if key in SECRET_KEYS:
                if not is_secret(str(full_key), value):
                    raise SettingsError(key, "must be a secret: pulumi config set --secret " + key)
                continue
            if key == CLIENT_KEYS:
                client_keys = _client_key_names(str(full_key), value, is_secret)
                continue
            values[key] = value
        elif namespace in PROVIDER_KEYS:
            if key not in PROVIDER_KEYS[namespace]:
                raise SettingsError(
                    str(full_key), f"unknown {namespace} setting{did_you_mean(key, PROVIDER_KEYS[namespace])}"
                )
        else:
            raise SettingsError(str(full_key), f"unknown namespace '{namespace}'{did_you_mean(namespace, namespaces)}")
    clients = values.get("clients")
    known = list(clients) if isinstance(clients, dict) else []
    for name in client_keys:
        if name not in known:
            raise SettingsError(
                f"{CLIENT_KEYS}.{name}", f"names no client in 'clients'{did_you_mean(name, known)}; remove the key"
            )
    return values


def _client_key_names(full_key: str, value: Any, is_secret: IsSecret) -> list[str]:
    """The client names of `clientKeys`, once every key is known to be a secret."""
    if not isinstance(value, dict):
        raise SettingsError(CLIENT_KEYS, "must map client names to secret keys")
    for name, key in value.items():
        if not is_secret(full_key, key):
            raise SettingsError(
                f"{CLIENT_KEYS}.{name}",
                f"must be a secret: pulumi config set --secret --path {CLIENT_KEYS}.{name} <key>",
            )
    return [str(name) for name in value]


def _is_secure_value(_key: str, value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error, not a silent overwrite
    (two clients of one name would otherwise become one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}; each name may appear once", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_stack_file(path: Path, project: str = PROJECT) -> dict[str, Any]:
    """The project's settings from `Pulumi.<stack>.yaml`; `secure:` values are checked, then skipped."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except OSError as error:
        raise SettingsError(str(path), f"cannot read the stack file ({error.strerror})") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        raise SettingsError(where, f"is not valid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise SettingsError(path.name, f"is not valid YAML: {str(error).strip().splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise SettingsError(path.name, "must be a mapping with a `config:` section")
    for key in document:
        if key not in STACK_FILE_KEYS:
            raise SettingsError(
                f"{path.name}: {key}", f"unknown stack file key{did_you_mean(str(key), STACK_FILE_KEYS)}"
            )
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise SettingsError(f"{path.name}: config", "must be a mapping of settings")
    return project_values(config, project, is_secret=_is_secure_value)


def _decode_config_value(value: Any) -> Any:
    # The engine passes structured settings as JSON text and scalars as plain text.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def read_engine_config(project: str = PROJECT) -> dict[str, Any]:
    """The project's settings from the engine's config (every key, so unknown ones are caught)."""
    from pulumi.runtime import config as runtime_config  # only the program needs Pulumi

    # The engine hands the program its config as one JSON bag; explicit values (tests) win.
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values = {key: _decode_config_value(value) for key, value in raw.items()}
    return project_values(values, project, is_secret=lambda key, _: runtime_config.is_config_secret(key))
