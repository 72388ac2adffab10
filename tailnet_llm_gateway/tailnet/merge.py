"""Merge the gateway's policy entries into the user's own tailnet policy file, keeping everything else.

The base file is HuJSON (JSON with comments and trailing commas). It is parsed with json-five, whose
model keeps each value's source position, and the merge edits the text around those positions, so
comments, ordering and formatting of the base survive byte for byte. Each entry this project owns is
one line preceded by `MARKER`; merging again replaces exactly those lines, so merging twice gives the
same bytes. A base entry that contradicts the settings (the gateway tag with other owners) is an error
naming both sides, never silently overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import json5
from json5 import model as hujson
from json5.loader import ModelLoader

from ..errors import SettingsError
from .entries import GatewayPolicy

MARKER = "// tailnet-llm-gateway: managed entry, rewritten on every render"
SETTING = "tailnetPolicy.base"


def parse_hujson(text: str, source: str) -> Any:
    """Plain Python data from HuJSON text; a SettingsError naming `source` if it is not valid."""
    try:
        return json5.loads(text)
    except ValueError as error:  # json-five's JSON5DecodeError
        raise SettingsError(SETTING, f"{source} is not valid HuJSON ({_first_line(error)})") from None


def merge_policy(base_text: str | None, gateway: GatewayPolicy, source: str = "the base policy") -> str:
    text = base_text if base_text and base_text.strip() else "{\n}\n"
    base_data = parse_hujson(text, source)
    if not isinstance(base_data, dict):
        raise SettingsError(SETTING, f"{source} must be a JSON object at the top level")
    owners = _object_lines(text, source, "tagOwners", gateway.tag_owners, lambda _: "tailnetPolicy.owners", "owners")
    text = _merge_section(text, source, "tagOwners", owners, is_object=True)
    hosts = _object_lines(
        text, source, "hosts", gateway.hosts, lambda key: gateway.host_settings.get(key, "tailnetIp"), "address"
    )
    text = _merge_section(text, source, "hosts", hosts, is_object=True)
    text = _merge_section(text, source, "grants", [_one_line(g) for g in gateway.grants], is_object=False)
    text = _merge_section(text, source, "tests", [_one_line(t) for t in gateway.tests], is_object=False)
    _check_base_survived(base_text or "{}", text, source)
    return text


def _one_line(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _object_lines(
    text: str, source: str, section_name: str, entries: dict[str, Any], setting: Callable[[str], str], what: str
) -> list[str]:
    """Lines for our entries of an object section (tagOwners, hosts) that the base does not hold already.
    A base entry for the same key with another value is an error naming both sides."""
    lines = []
    section = _section(_parse_model(text, source), section_name)
    for key, ours in sorted(entries.items()):
        theirs = None
        if isinstance(section, hujson.JSONObject):
            for pair in section.key_value_pairs:
                if _key(pair) == key and not _is_owned(text, pair.key):
                    theirs = json5.loads(_span(text, pair.value))
        if theirs is None:
            lines.append(f"{json.dumps(key)}: {_one_line(ours)}")
        elif _comparable(theirs) != _comparable(ours):
            raise SettingsError(
                setting(key),
                f"{source} already gives {key} the {what} {theirs}; the settings say {ours}. "
                "Make them agree or remove the entry from the base file",
            )
        # The same value in the base: keep the user's entry as it is, and add none of ours.
    return lines


def _comparable(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value


@dataclass
class _Lines:
    """The text as lines, with (line, column) -> offset helpers for json-five's positions."""

    text: str

    def __post_init__(self) -> None:
        self.starts = [0]
        for index, char in enumerate(self.text):
            if char == "\n":
                self.starts.append(index + 1)

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def line(self, line: int) -> str:
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        return self.text[self.starts[line - 1] : end]


def _parse_model(text: str, source: str) -> hujson.JSONObject:
    try:
        document = json5.loads(text, loader=ModelLoader())
    except ValueError as error:
        raise SettingsError(SETTING, f"{source} is not valid HuJSON ({_first_line(error)})") from None
    if not isinstance(document.value, hujson.JSONObject):
        raise SettingsError(SETTING, f"{source} must be a JSON object at the top level")
    return document.value


def _start(node: hujson.Node) -> tuple[int, int]:
    """Where a node starts (line from 1, column from 0); the model loader records it for every node."""
    assert node.lineno is not None and node.col_offset is not None
    return node.lineno, node.col_offset


def _end(node: hujson.Node) -> tuple[int, int]:
    assert node.end_lineno is not None and node.end_col_offset is not None
    return node.end_lineno, node.end_col_offset


def _key(pair: hujson.KeyValuePair) -> str:
    key = pair.key
    return key.name if isinstance(key, hujson.Identifier) else str(getattr(key, "characters", ""))


def _section(top: hujson.JSONObject, name: str) -> hujson.Value | None:
    for pair in top.key_value_pairs:
        if _key(pair) == name:
            return pair.value
    return None


def _span(text: str, node: hujson.Node) -> str:
    lines = _Lines(text)
    return text[lines.offset(*_start(node)) : lines.offset(*_end(node))]


def _is_owned(text: str, node: hujson.Node) -> bool:
    """An owned entry starts its line, and the nearest non-blank line above it is the marker."""
    lines = _Lines(text)
    line, column = _start(node)
    if lines.line(line)[:column].strip():
        return False
    above = line - 1
    while above >= 1 and not lines.line(above).strip():
        above -= 1
    return above >= 1 and lines.line(above).strip() == MARKER


def _indent_unit(text: str) -> str:
    return "\t" if any(line.startswith("\t") for line in text.splitlines()) else "  "


def _leading(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _merge_section(text: str, source: str, name: str, entries: list[str], is_object: bool) -> str:
    top = _parse_model(text, source)
    section = _section(top, name)
    unit = _indent_unit(text)
    if section is None:
        if not entries:
            return text
        indent = _leading(_Lines(text).line(_end(top)[0])) + unit
        block = [f"{indent}{json.dumps(name)}: {'{' if is_object else '['}"]
        block += _block(entries, indent + unit)
        block.append(f"{indent}{'}' if is_object else ']'},")
        return _insert_before_close(text, top, block)
    elements: list[hujson.Node]
    ends: list[hujson.Node]
    if isinstance(section, hujson.JSONObject) and is_object:
        elements = [pair.key for pair in section.key_value_pairs]
        ends = [pair.value for pair in section.key_value_pairs]
    elif isinstance(section, hujson.JSONArray) and not is_object:
        elements = ends = list(section.values)
    else:
        raise SettingsError(SETTING, f"{source}: '{name}' must be {'an object' if is_object else 'a list'}")
    owned = [(start, end) for start, end in zip(elements, ends, strict=True) if _is_owned(text, start)]
    if not owned:
        if not entries:
            return text
        first_line = _Lines(text).line(_start(elements[0])[0]) if elements else ""
        if elements and not first_line[: _start(elements[0])[1]].strip():
            indent = _leading(first_line)
        else:
            indent = _leading(_Lines(text).line(_end(section)[0])) + unit
        return _insert_before_close(text, section, _block(entries, indent))
    # Replace our lines in place: the block goes where the first owned entry was.
    lines = text.split("\n")
    indent = _leading(lines[_start(owned[0][0])[0] - 1])
    drop: set[int] = set()
    for start, end in owned:
        marker = _start(start)[0] - 1
        while not lines[marker - 1].strip():
            marker -= 1
        drop.update(range(marker - 1, _end(end)[0]))
    first = min(drop)
    kept = [line for index, line in enumerate(lines) if index not in drop]
    return "\n".join(kept[:first] + _block(entries, indent) + kept[first:])


def _block(entries: list[str], indent: str) -> list[str]:
    block = []
    for entry in entries:
        block += [f"{indent}{MARKER}", f"{indent}{entry},"]
    return block


def _insert_before_close(text: str, container: hujson.JSONObject | hujson.JSONArray, block: list[str]) -> str:
    lines = _Lines(text)
    close_line, close_col = _end(container)[0], _end(container)[1] - 1
    members: list[hujson.Node] = (
        [pair.value for pair in container.key_value_pairs]
        if isinstance(container, hujson.JSONObject)
        else list(container.values)
    )
    edits: list[tuple[int, str]] = []
    if members and container.trailing_comma is None:
        edits.append((lines.offset(*_end(members[-1])), ","))
    close_text = lines.line(close_line)
    if close_text[:close_col].strip():
        # The bracket shares its line with other text: give it a line of its own.
        edits.append((lines.offset(close_line, close_col), "\n" + "\n".join(block) + "\n" + _leading(close_text)))
    else:
        edits.append((lines.offset(close_line, 0), "\n".join(block) + "\n"))
    # From the end backwards, so earlier offsets stay valid; at one offset the comma goes first.
    for _, position, insert in sorted(
        ((i, p, s) for i, (p, s) in enumerate(edits)), key=lambda e: (e[1], e[0]), reverse=True
    ):
        text = text[:position] + insert + text[position:]
    return text


def _check_base_survived(base_text: str, merged: str, source: str) -> None:
    """Every value of the base that the gateway does not own is still in the merged policy."""
    base, result = parse_hujson(base_text, source), parse_hujson(merged, "the merged policy")
    base_model = _parse_model(base_text, source)
    for key, value in base.items():
        section = _section(base_model, key)
        if isinstance(section, hujson.JSONArray):
            theirs = [json5.loads(_span(base_text, v)) for v in section.values if not _is_owned(base_text, v)]
            kept = [v for v in result.get(key, []) if v in theirs]
            lost = theirs != kept
        elif isinstance(section, hujson.JSONObject):
            lost = any(
                result.get(key, {}).get(_key(pair)) != json5.loads(_span(base_text, pair.value))
                for pair in section.key_value_pairs
                if not _is_owned(base_text, pair.key)
            )
        else:
            lost = result.get(key) != value
        if lost:
            raise SettingsError(SETTING, f"merging would change '{key}' of {source}; edit the marked entries by hand")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
