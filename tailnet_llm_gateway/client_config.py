"""What one client needs to connect, from the stack's outputs, in the formats tools read.

The outputs are `pulumi stack output --json --show-secrets` (the command runs it unless given a file):
`client-<name>` for a named client (its key, base URLs and models), or, on a stack without clients,
`masterKey`, `apiRoutes` and `models` for the one client there is (`master`).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import SettingsError
from .settings.messages import did_you_mean

FORMATS = ("json", "env", "continue", "aider")


def client_output(name: str) -> str:
    """The stack output that carries one client's connection data."""
    return f"client-{name}"


@dataclass(frozen=True)
class ClientAccess:
    name: str
    key: str
    # API route path -> base URL; the first is LiteLLM's (OpenAI-style, ending in /v1).
    base_urls: dict[str, str]
    models: tuple[str, ...]

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL: the first route that ends in /v1 (LiteLLM's)."""
        urls = list(self.base_urls.values())
        return next((url for url in urls if url.endswith("/v1")), urls[0])


def read_outputs(source: str | None) -> dict[str, Any]:
    """The stack outputs as JSON: from a file, `-` for stdin, or from the Pulumi CLI."""
    if source is None:
        try:
            result = subprocess.run(
                ["pulumi", "stack", "output", "--json", "--show-secrets"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except FileNotFoundError:
            raise SettingsError("--outputs", "no Pulumi CLI here; pass the outputs as a file") from None
        if result.returncode != 0:
            raise SettingsError("pulumi stack output", (result.stderr.strip().splitlines() or ["failed"])[-1])
        text = result.stdout
    else:
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise SettingsError(f"--outputs {source}", f"cannot read it ({error.strerror})") from None
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as error:
        raise SettingsError("--outputs", f"is not the JSON of `pulumi stack output --json` ({error.msg})") from None
    if not isinstance(outputs, dict):
        raise SettingsError("--outputs", "is not the JSON of `pulumi stack output --json`")
    return outputs


class _ClientOutput(BaseModel):
    """One client's stack output, as the program exports it."""

    model_config = ConfigDict(strict=True)
    key: str = Field(min_length=1)
    baseUrls: dict[str, str] = Field(min_length=1)  # noqa: N815 (the output's own name)
    models: list[str]


def _client_output(outputs: Mapping[str, Any], name: str) -> _ClientOutput | None:
    output = client_output(name)
    if output not in outputs:
        return None
    try:
        return _ClientOutput.model_validate(outputs[output])
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in (output, *first["loc"]))
        raise SettingsError(f"--outputs {where}", f"{first['msg'].lower()} (is this the stack's own output?)") from None


def client_access(outputs: Mapping[str, Any], name: str) -> ClientAccess:
    data = _client_output(outputs, name)
    if data is not None:
        return ClientAccess(name=name, key=data.key, base_urls=dict(data.baseUrls), models=tuple(data.models))
    known = [k.removeprefix("client-") for k in outputs if k.startswith("client-")]
    if name == "master" and not known and "masterKey" in outputs:
        routes = outputs.get("apiRoutes") or {"/": outputs.get("apiBaseUrl")}
        master = {"key": outputs["masterKey"], "baseUrls": routes, "models": outputs.get("models") or []}
        data = _client_output({client_output(name): master}, name)
        assert data is not None
        return ClientAccess(name=name, key=data.key, base_urls=dict(data.baseUrls), models=tuple(data.models))
    if not known:
        raise SettingsError(f"client {name}", "the stack has no clients: its one client is 'master'")
    raise SettingsError(f"client {name}", f"is not a client of this stack{did_you_mean(name, known)}")


def render_client_config(access: ClientAccess, fmt: str) -> str:
    if fmt == "json":
        data = {"name": access.name, "baseUrl": access.base_url, "apiKey": access.key, "models": list(access.models)}
        return json.dumps({**data, "baseUrls": access.base_urls}, indent=2) + "\n"
    if fmt == "env":
        # OpenAI's SDKs and most tools read these; Anthropic's SDK adds /v1/messages to its base URL.
        variables = {
            "OPENAI_BASE_URL": access.base_url,
            "OPENAI_API_KEY": access.key,
            "ANTHROPIC_BASE_URL": access.base_url.removesuffix("/v1"),
            "ANTHROPIC_API_KEY": access.key,
        }
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
    if fmt == "continue":
        # Continue's config.yaml (schema v1): one OpenAI-compatible entry per model.
        models = [
            {"name": model, "provider": "openai", "model": model, "apiBase": access.base_url, "apiKey": access.key}
            for model in access.models
        ]
        document = {"name": f"tailnet-llm-gateway ({access.name})", "version": "0.0.1", "schema": "v1"}
        return yaml.safe_dump({**document, "models": models}, sort_keys=False)
    if fmt == "aider":
        # aider's .aider.conf.yml: an OpenAI-compatible endpoint; `openai/` tells aider (litellm) how to call it.
        document = {"openai-api-base": access.base_url, "openai-api-key": access.key}
        if access.models:
            document["model"] = f"openai/{access.models[0]}"
        return yaml.safe_dump(document, sort_keys=False)
    raise SettingsError("--format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
