"""Routes compared the way Caddy compares them, in every script: Caddy lowers both a path pattern and the
request path with Go's strings.ToLower, and orders `handle` blocks by UTF-8 byte lengths. The settings
check (policy.gateway_contract) must agree with the real Caddy on both, or two routes it thinks apart
would catch each other's requests.
"""

from __future__ import annotations

import sys
from urllib.parse import quote

import httpx
import pytest

from harness.ports import free_port
from harness.processes import start_caddy
from policy.gateway_contract import caddy_lower, caddy_order
from tailnet_llm_gateway.errors import SettingsError
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import build_topology
from tests.caddy_json import adapt

# Letters whose case mappings differ between Python and Go, between simple and full mappings, or that fold
# onto ASCII letters from other blocks (Kelvin, Angstrom and Ohm signs, Roman numerals, fullwidth forms).
LETTERS = [
    *"iIİı",
    *"kK\u212a",
    *"sSſσςΣ",
    *"åÅ\u212b",
    *"ßẞ",
    *"ωΩ\u2126",
    *"ǆǅǄ",
    *"\u2160\u2170",
    *"aAａＡ",
    *"\u13a0\uab70",
]


def _fold_class(letter: str) -> str:
    return caddy_lower(letter)


def test_python_lowers_only_one_code_point_to_more_than_one():
    """caddy_lower corrects Python's full case mapping where it differs from Go's simple one: U+0130 only."""
    longer = [hex(code) for code in range(sys.maxunicode + 1) if len(chr(code).lower()) != 1]
    assert longer == ["0x130"], f"Python's lower() now expands {longer}: caddy_lower would fold them wrongly"


def test_the_overlap_check_folds_case_as_caddy_does(tmp_path):
    """One real Caddy with a route per letter: two requests reach the same route exactly when the check
    folds their letters together."""
    lines = ["{", "\tadmin off", "\tauto_https off", "}", f"http://127.0.0.1:{(port := free_port())} {{"]
    for index, letter in enumerate(LETTERS):
        lines.append(f'\thandle /c/{letter}/* {{\n\t\trespond "{index}" 200\n\t}}')
    lines.append('\thandle {\n\t\trespond "none" 404\n\t}\n}')
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    caddy = start_caddy(caddyfile, port, tmp_path, key="unused", name="caddy-folding")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            routed = {letter: client.get(f"/c/{quote(letter)}/x").text for letter in LETTERS}
    finally:
        caddy.stop()
    wrong = [
        f"{a!r} and {b!r}: Caddy {'joins' if routed[a] == routed[b] else 'separates'} them"
        for a in LETTERS
        for b in LETTERS
        if a < b and (routed[a] == routed[b]) != (_fold_class(a) == _fold_class(b))
    ]
    assert "none" not in routed.values(), f"a request reached no route: {routed}"
    assert not wrong, f"the overlap check and Caddy disagree: {wrong}"


@pytest.mark.parametrize(
    ("first", "second"),
    [("/İ/*", "/i/*"), ("/\u212a/*", "/k/*"), ("/\u212b/*", "/å/*"), ("/ΣΑΣ/*", "/σασ/*"), ("/Ａ/*", "/ａ/*")],
)
def test_routes_caddy_folds_together_are_refused(dev_values, first, second):
    dev_values["routes"] += [
        {"path": first, "respond": "open", "auth": "none"},
        {"path": second, "upstream": "dashboard", "auth": "sso"},
    ]
    with pytest.raises(SettingsError, match="match the same requests") as raised:
        build_topology(Settings.from_mapping(dev_values))
    assert raised.value.setting.endswith(".path"), f"the message names {raised.value.setting}, not a route's path"


def test_a_route_caddy_tries_later_because_of_its_bytes_is_refused_as_unreachable(dev_values):
    """`/KK/*` (Kelvin signs, 8 bytes) comes before `/kk/a/*` (6 bytes) in Caddy, and takes its requests."""
    dev_values["routes"] += [
        {"path": "/\u212a\u212a/*", "upstream": "dashboard", "auth": "sso"},
        {"path": "/kk/a/*", "upstream": "dashboard", "auth": "sso"},
    ]
    with pytest.raises(SettingsError, match="never reached"):
        build_topology(Settings.from_mapping(dev_values))


def test_caddy_orders_unicode_paths_as_the_contract_says(tmp_path):
    patterns = ["/\u212a\u212a/*", "/kk/a/*", "/ééé/*", "/abcd/*", "/İ/*", "/i/x/*", "/é", "/ab"]
    site = "\n".join(f'\thandle {p} {{\n\t\trespond "{i}" 200\n\t}}' for i, p in enumerate(patterns))
    config = adapt("{\n\tadmin off\n\tauto_https off\n}\nhttp://127.0.0.1:1 {\n" + site + "\n}\n", tmp_path)
    (server,) = config["apps"]["http"]["servers"].values()
    routes = server["routes"][0]["handle"][0]["routes"] if "host" in str(server["routes"][0]) else server["routes"]
    caddy = [route["match"][0]["path"][0] for route in routes]
    expected = [patterns[i] for i in caddy_order(patterns)]
    assert caddy == expected, f"Caddy tries {caddy}; the route check assumes {expected}"
