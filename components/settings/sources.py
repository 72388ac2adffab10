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
    for full_key, value in config.items():
        namespace, _, key = str(full_key).partition(":")
        if not key:
            raise SettingsError(str(full_key), f"config keys need a namespace, such as {project}:{full_key}")
        if namespace == project:
            if key in SECRET_KEYS:
                if not is_secret(str(full_key), value):
                    raise SettingsError(key, "must be a secret: pulumi config set --secret " + key)
                continue
            values[key] = value
        elif namespace in PROVIDER_KEYS:
            if key not in PROVIDER_KEYS[namespace]:
                raise SettingsError(
                    str(full_key), f"unknown {namespace} setting{did_you_mean(key, PROVIDER_KEYS[namespace])}"
                )
        else:
            raise SettingsError(str(full_key), f"unknown namespace '{namespace}'{did_you_mean(namespace, namespaces)}")
    return values


def _is_secure_value(_key: str, value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def read_stack_file(path: Path, project: str = PROJECT) -> dict[str, Any]:
    """The project's settings from `Pulumi.<stack>.yaml`; `secure:` values are checked, then skipped."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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
