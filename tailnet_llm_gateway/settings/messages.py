"""Turning a settings validation failure into the one line a user needs.

A typo is reported as the unknown key it is, with the closest valid key; a required key that is missing
because it was misspelt is reported as that misspelling, not as "required".
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from ..errors import SettingsError


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest option, or nothing when none is close."""
    close = difflib.get_close_matches(word, sorted(set(options)), n=1, cutoff=0.6)
    if not close:
        close = [o for o in options if o.lower() == word.lower()]
    return f"; did you mean '{close[0]}'?" if close else ""


# A key written as it is in a setting's name; any other key (a dict key a user wrote) is quoted, so the
# message stays one line whatever the key holds.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def setting_path(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue  # pydantic's marker for "the key itself"; the key is already the last part
        elif not _PLAIN_KEY.fullmatch(str(part)):
            path += f"[{str(part)!r}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(settings)"


def _unwrap(annotation: Any) -> Any:
    """The model or container inside Optional[...] and Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The setting names valid at `loc` (under `model`), as users write them."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for name, f in current.model_fields.items() if part in (name, f.alias)), None)
            if field is None:
                return []
            current = field.annotation
        elif origin in (dict, tuple, list):
            current = typing.get_args(current)[-1 if origin is dict else 0]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def describe(error: ValidationError, model: type[BaseModel], extra_keys: Iterable[str] = ()) -> SettingsError:
    """One SettingsError for a validation failure: unknown keys first (they often explain the rest)."""
    errors = error.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    missing = [e for e in errors if e["type"] == "missing"]
    for entry in unknown:
        parent, key = tuple(entry["loc"][:-1]), str(entry["loc"][-1])
        for gone in missing:
            wanted = str(gone["loc"][-1])
            if tuple(gone["loc"][:-1]) == parent and did_you_mean(key, [wanted]):
                return SettingsError(
                    setting_path(entry["loc"]),
                    f"unknown setting; did you mean '{wanted}'? (it is required and missing)",
                )
        valid = _keys_at(model, parent) + (list(extra_keys) if not parent else [])
        return SettingsError(setting_path(entry["loc"]), f"unknown setting{did_you_mean(key, valid)}")
    first = errors[0]
    if first["type"] == "missing":
        return SettingsError(setting_path(first["loc"]), "is required")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("value_error", "assertion_error") and "input" in first:
        message = f"{message} (got {first['input']!r})"
    return SettingsError(setting_path(first["loc"]), message)
