"""No secret value in a rendered file, a command, a label or the edge's environment."""

from __future__ import annotations

import re

from gateway_contract import Role
from pulumi_policy import ReportViolation, StackValidationArgs

from .resources import containers_in, role_of

KEY_LITERAL = re.compile(r"sk-[A-Za-z0-9_-]{16,}")
SHORTEST_SECRET = 8


def no_secrets_in_files_or_commands(args: StackValidationArgs, report: ReportViolation) -> None:
    # Across containers: a config writer holds the files, the service it writes for holds the secrets.
    secrets = []
    for container in containers_in(args.resources):
        for env in container.props.get("envs") or []:
            name, _, value = str(env).partition("=")
            # A switch such as LITELLM_TPM_TOKEN_RESERVATION_ENABLED=false is no secret; no key is that short.
            secret_name = any(word in name.upper() for word in ("KEY", "SECRET", "TOKEN", "PASSWORD"))
            if secret_name and len(value) >= SHORTEST_SECRET:
                secrets.append(value)
        # A keys writer's uploads are the secrets themselves (the edge reads them from its keys volume).
        if role_of(container.props) == Role.KEYS_WRITER:
            secrets += [str(u.get("content") or "") for u in container.props.get("uploads") or [] if u.get("content")]
    for container in containers_in(args.resources):
        props = container.props
        places = {
            "command": " ".join(map(str, props.get("command") or [])),
            "entrypoint": " ".join(map(str, props.get("entrypoints") or [])),
            "environment": " ".join(map(str, props.get("envs") or [])) if role_of(props) == Role.EDGE else "",
        }
        for upload in props.get("uploads") or [] if role_of(props) != Role.KEYS_WRITER else []:
            places[f"upload {upload.get('file')}"] = str(upload.get("content") or "")
        for label in props.get("labels") or []:
            places[f"label {label.get('label')}"] = str(label.get("value") or "")
        for where, text in places.items():
            if any(secret in text for secret in secrets) or KEY_LITERAL.search(text):
                report(f"a secret value appears in the {where}", container.urn)
