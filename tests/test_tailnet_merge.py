"""Guarantees of the policy merge: the user's policy survives; the gateway's entries are in, once."""

from __future__ import annotations

import json5
import pytest

from harness.stacks import ROOT
from tailnet_llm_gateway.errors import SettingsError
from tailnet_llm_gateway.tailnet.entries import gateway_policy
from tailnet_llm_gateway.tailnet.merge import MARKER, merge_policy

BASE = (ROOT / "tailnet" / "dev-base.hujson").read_text()


def _topology(stack: str, values: dict | None = None):
    from harness.stacks import stack_values
    from tailnet_llm_gateway.settings import Settings
    from tailnet_llm_gateway.topology import build_topology

    return build_topology(Settings.from_mapping(values or stack_values(stack)))


@pytest.fixture
def gateway():
    """The gateway's entries when a device carries the gateway tag (its own node, dev-node)."""
    return gateway_policy(_topology("dev-node").tailnet)


@pytest.fixture
def host_gateway(dev_topology):
    """The gateway's entries for a host-bind host without the tag (dev): named by a hosts alias."""
    return gateway_policy(dev_topology.tailnet)


def test_every_comment_and_rule_of_the_base_survives(gateway):
    merged = merge_policy(BASE, gateway)
    kept = [line for line in merged.splitlines() if MARKER not in line and "tag:llm-gateway" not in line]
    assert kept == BASE.splitlines(), "the merge changed, dropped or reordered a line of the user's policy"


def test_base_sections_all_come_back(gateway):
    base, merged = json5.loads(BASE), json5.loads(merge_policy(BASE, gateway))
    for section in ("groups", "hosts", "acls", "ssh"):
        assert merged[section] == base[section], f"the user's {section} changed"
    assert merged["grants"][: len(base["grants"])] == base["grants"], "the user's grants changed or moved"
    assert merged["tests"][: len(base["tests"])] == base["tests"], "the user's tests changed or moved"
    assert merged["tagOwners"]["tag:server"] == base["tagOwners"]["tag:server"], "the user's tag owners changed"


def test_gateway_entries_are_added(gateway):
    merged = json5.loads(merge_policy(BASE, gateway))
    assert merged["tagOwners"]["tag:llm-gateway"] == ["autogroup:admin"], (
        "the gateway tag would have no owners, or others"
    )
    assert {"src": ["group:llm-users"], "dst": ["tag:llm-gateway"], "ip": ["tcp:443"]} in merged["grants"], (
        "the audiences would not reach the gateway on 443"
    )
    assert {"src": "guest@example.com", "deny": ["tag:llm-gateway:443"]} in merged["tests"], (
        "the policy would not test that outsiders are kept out"
    )


def test_gateway_grants_only_the_https_port_to_the_audiences(gateway):
    assert gateway.grants == [{"src": ["group:llm-users"], "dst": ["tag:llm-gateway"], "ip": ["tcp:443"]}], (
        "the tailnet could reach more than the edge"
    )
    member_test = gateway.tests[0]
    assert member_test["accept"] == ["tag:llm-gateway:443"], "the policy would not test that members reach 443"
    assert {"tag:llm-gateway:11435", "tag:llm-gateway:22"} <= set(member_test["deny"]), (
        "the tests would not notice LiteLLM or SSH becoming reachable"
    )


def test_merging_twice_gives_the_same_bytes(gateway):
    once = merge_policy(BASE, gateway)
    assert merge_policy(once, gateway) == once, "every render would change the policy"


def test_changed_settings_replace_the_gateway_entries_in_place(gateway):
    from harness.stacks import stack_values

    once = merge_policy(BASE, gateway)
    values = stack_values("dev-node")
    values["tailnetPolicy"]["audiences"] = ["group:admins"]
    other = gateway_policy(_topology("dev-node", values).tailnet)
    again = json5.loads(merge_policy(once, other))
    grants = [g for g in again["grants"] if g.get("dst") == ["tag:llm-gateway"]]
    assert grants == [{"src": ["group:admins"], "dst": ["tag:llm-gateway"], "ip": ["tcp:443"]}], (
        "an old audience would keep access"
    )


def test_missing_sections_and_empty_base_are_created(gateway):
    for base in (None, "", "{}", '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}'):
        merged = merge_policy(base, gateway)
        data = json5.loads(merged)
        assert set(data) >= {"tagOwners", "grants", "tests"}, f"sections missing for base {base!r}"
        assert merge_policy(merged, gateway) == merged, "merging a base without the sections twice changed it"


def test_one_line_base_stays_valid(gateway):
    base = '{"grants": [], "tests": [{"src": "a@example.com", "accept": ["tag:x:1"]}] /* c */}'
    merged = merge_policy(base, gateway)
    data = json5.loads(merged)
    assert data["tests"][0] == {"src": "a@example.com", "accept": ["tag:x:1"]} and "/* c */" in merged, (
        "a one-line base lost an entry or its comment"
    )
    assert merge_policy(merged, gateway) == merged, "merging a one-line base again changed it"


def test_tag_defined_with_other_owners_is_a_conflict_naming_both_sides(gateway):
    base = '{"tagOwners": {"tag:llm-gateway": ["group:ops"]}}'
    with pytest.raises(SettingsError) as caught:
        merge_policy(base, gateway)
    assert "group:ops" in caught.value.problem and "autogroup:admin" in caught.value.problem, (
        "the conflict does not name both sides"
    )


def test_tag_defined_with_the_same_owners_is_kept_as_the_user_wrote_it(gateway):
    base = '{"tagOwners": {"tag:llm-gateway": ["autogroup:admin"]}}'
    merged = merge_policy(base, gateway)
    assert json5.loads(merged)["tagOwners"] == {"tag:llm-gateway": ["autogroup:admin"]}, "a duplicate key was added"


def test_invalid_base_is_a_settings_error(gateway):
    with pytest.raises(SettingsError) as caught:
        merge_policy('{"acls": [', gateway, "tailnet/broken.hujson")
    assert caught.value.setting == "tailnetPolicy.base" and "tailnet/broken.hujson" in caught.value.problem, (
        "an invalid base is not named as the setting"
    )


def test_host_without_the_tag_is_named_by_its_address(host_gateway):
    """A grant to a tag no device carries would control nothing: the host-bind host is a hosts alias."""
    merged = json5.loads(merge_policy(BASE, host_gateway))
    assert merged["hosts"]["llm-gateway-host"] == "100.101.102.103", "the policy would not name the gateway host"
    assert merged["hosts"]["nas"] == "100.90.1.2", "the user's hosts changed"
    assert {"src": ["group:llm-users"], "dst": ["llm-gateway-host"], "ip": ["tcp:443"]} in merged["grants"], (
        "the audiences would not reach the host on 443"
    )
    assert "tag:llm-gateway" not in merged["tagOwners"], "a tag that no device carries would be owned"
    assert {"src": "guest@example.com", "deny": ["llm-gateway-host:443"]} in merged["tests"], (
        "the policy would not test that outsiders are kept off the host"
    )


def test_host_alias_defined_with_another_address_is_a_conflict_naming_both_sides(host_gateway):
    with pytest.raises(SettingsError) as caught:
        merge_policy('{"hosts": {"llm-gateway-host": "100.64.0.9"}}', host_gateway)
    assert caught.value.setting == "tailnetIp" and "100.64.0.9" in caught.value.problem, (
        "the conflict does not name the setting and the base's address"
    )
    assert "100.101.102.103" in caught.value.problem, "the conflict does not name the settings' address"
