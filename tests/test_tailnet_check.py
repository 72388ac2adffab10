"""Guarantees of the offline policy-test check: passes, failures and the unknowable, each reported right."""

from __future__ import annotations

import json5

from harness.stacks import ROOT
from tailnet_llm_gateway.tailnet.check import Outcome, check_policy_tests
from tailnet_llm_gateway.tailnet.entries import gateway_policy
from tailnet_llm_gateway.tailnet.merge import merge_policy

GROUPS = {"group:llm-users": ["alice@example.com"], "group:ops": ["olga@example.com"]}


def _outcomes(policy: dict) -> list[Outcome]:
    return [a.outcome for a in check_policy_tests(policy)]


def test_merged_dev_node_policy_passes_all_its_tests():
    from harness.stacks import stack_values
    from tailnet_llm_gateway.settings import Settings
    from tailnet_llm_gateway.topology import build_topology

    topology = build_topology(Settings.from_mapping(stack_values("dev-node")))
    base = (ROOT / "tailnet" / "dev-base.hujson").read_text()
    policy = json5.loads(merge_policy(base, gateway_policy(topology.tailnet)))
    results = check_policy_tests(policy)
    assert results and all(a.outcome is Outcome.PASSED for a in results), [a.line() for a in results]


def test_host_bind_policy_is_exercised_and_never_passed_on_guesses(dev_topology):
    """The host is a user's device: base rules for autogroup:self or tags may cover it, which only Tailscale
    knows. Members reach it on 443 (the grant says so); what depends on the device is not evaluated."""
    base = (ROOT / "tailnet" / "dev-base.hujson").read_text()
    results = check_policy_tests(json5.loads(merge_policy(base, gateway_policy(dev_topology.tailnet))))
    by_dst = {(a.src, a.dst): a.outcome for a in results}
    assert by_dst[("alice@example.com", "llm-gateway-host:443")] is Outcome.PASSED, (
        "members could not reach the host on 443"
    )
    assert by_dst[("guest@example.com", "llm-gateway-host:443")] is Outcome.NOT_EVALUATED, (
        "an outsider's access to a user's device was decided without knowing the device"
    )
    assert Outcome.FAILED not in by_dst.values(), "the dev stack's own tests fail"


def test_grant_on_a_port_accepts_that_port_and_no_other():
    policy = {
        "groups": GROUPS,
        "grants": [{"src": ["group:llm-users"], "dst": ["tag:gw"], "ip": ["tcp:443"]}],
        "tests": [
            {"src": "alice@example.com", "accept": ["tag:gw:443"], "deny": ["tag:gw:22", "tag:gw:11435"]},
            {"src": "olga@example.com", "deny": ["tag:gw:443"]},
        ],
    }
    assert _outcomes(policy) == [Outcome.PASSED] * 4, "a port-scoped grant was evaluated wrongly"


def test_a_wildcard_acl_fails_the_deny_tests():
    policy = {
        "groups": GROUPS,
        "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
        "tests": [
            {"src": "olga@example.com", "deny": ["tag:gw:443"]},
            {"src": "alice@example.com", "deny": ["tag:gw:11435"]},
        ],
    }
    results = check_policy_tests(policy)
    assert [a.outcome for a in results] == [Outcome.FAILED, Outcome.FAILED], "a policy open to everyone passed"
    assert "acls[0]" in results[0].reason, "the failure does not name the rule that allows it"


def test_missing_grant_fails_the_accept_test():
    policy = {"groups": GROUPS, "tests": [{"src": "alice@example.com", "accept": ["tag:gw:443"]}]}
    assert _outcomes(policy) == [Outcome.FAILED], "a wildcard acl passed a deny test"


def test_port_lists_and_ranges_in_acls():
    policy = {
        "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:gw:80,8000-8100"]}],
        "tests": [
            {"src": "alice@example.com", "accept": ["tag:gw:80", "tag:gw:8050"], "deny": ["tag:gw:443"]},
            {"src": "tag:robot", "deny": ["tag:gw:80"]},
        ],
    }
    assert _outcomes(policy) == [Outcome.PASSED] * 4, "port lists and ranges were evaluated wrongly"


def test_hosts_resolve_to_addresses():
    policy = {
        "hosts": {"nas": "100.90.1.2", "lan": "100.90.0.0/16"},
        "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["lan:22"]}],
        "tests": [{"src": "alice@example.com", "accept": ["nas:22"], "deny": ["100.64.0.1:22"]}],
    }
    assert _outcomes(policy) == [Outcome.PASSED, Outcome.PASSED], "hosts entries were evaluated wrongly"


def test_unknowable_constructs_are_not_evaluated_never_passed():
    policy = {
        "acls": [{"action": "accept", "src": ["100.64.0.0/10"], "dst": ["tag:gw:443"]}],
        "grants": [{"src": ["alice@example.com"], "dst": ["100.90.1.2"], "ip": ["22"]}],
        "tests": [{"src": "alice@example.com", "deny": ["tag:gw:443"], "accept": ["tag:gw:22"]}],
    }
    results = check_policy_tests(policy)
    assert [a.outcome for a in results] == [Outcome.NOT_EVALUATED, Outcome.NOT_EVALUATED], [a.line() for a in results]


def test_via_grants_are_not_evaluated():
    policy = {
        "grants": [{"src": ["autogroup:member"], "dst": ["tag:gw"], "ip": ["*"], "via": ["tag:exit"]}],
        "tests": [{"src": "alice@example.com", "accept": ["tag:gw:443"]}],
    }
    assert _outcomes(policy) == [Outcome.NOT_EVALUATED], (
        "something the check cannot know was counted as passed or failed"
    )
