"""The project's offline policy evaluator agrees with an evaluator it did not write.

Each stack's merged, rendered tailnet policy is compiled by headscale's policy engine (v0.29, grants with
`ip` and `app`) for a tailnet holding a device of every login, tag and host the policy names, and tailscaled's
own packet filter decides on the result (harness/testnet/grants.py). On every assertion of the policy's
`tests`, on the remote machines' port grants and on every route capability, the two must agree.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from harness.stacks import ROOT, TAILNET_APPS_STACK, TEST_STACKS, real_tailnet_stack_values
from harness.testnet import build
from harness.testnet.grants import Answer, Device, ask
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.tailnet.check import NO, YES, Outcome, check_policy_tests, policy_allows
from tailnet_llm_gateway.tailnet.merge import parse_hujson
from tailnet_llm_gateway.tailnet.policy import checked_policy
from tailnet_llm_gateway.topology import build_topology
from tests.conftest import cannot_run

STACKS = {**TEST_STACKS, "real tailnet": lambda: real_tailnet_stack_values("http://127.0.0.1:1")}
_LOGIN = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$")
# Ports a machine serves besides its model port, which the gateway must never be granted.
OTHER_PORTS = (22, 80)


@pytest.fixture(scope="module")
def bin_dir():
    try:
        return build.binaries()
    except build.BuildError as error:
        cannot_run(f"the test tailnet is built with Go: {error}")


class World:
    """A device for every login, tag and host a policy names; who each is, as the policy names it."""

    def __init__(self, policy: dict[str, Any]) -> None:
        self.policy = policy
        self.devices: dict[str, Device] = {}  # principal -> its device
        logins = sorted({s for s in _strings(policy) if _LOGIN.fullmatch(s)})
        for index, login in enumerate(logins, start=1):
            self.devices[login] = Device(f"person-{index}", f"100.64.1.{index}", login=login)
        for index, tag in enumerate(sorted(policy.get("tagOwners") or {}), start=1):
            self.devices[tag] = Device(f"tagged-{index}", f"100.64.2.{index}", tags=(tag,))
        for index, (alias, address) in enumerate(sorted((policy.get("hosts") or {}).items()), start=1):
            if "/" not in address:
                self.devices[alias] = Device(f"host-{index}", address, login=f"host-{index}@testnet.invalid")

    def device(self, principal: str) -> Device | None:
        return self.devices.get(principal)

    def members(self, principals: tuple[str, ...]) -> set[str]:
        """The principals (logins and tags) that `principals` (users, groups, tags) stand for."""
        groups = self.policy.get("groups") or {}
        return {m for p in principals for m in (groups.get(p, [p]))}


def _strings(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node.rsplit(":", 1)[0] if re.search(r"@[^:]+:[0-9*,-]+$", node) else node


def _compiled(name: str):
    values = STACKS[name]()
    topology = build_topology(Settings.from_mapping(values))
    text, _ = checked_policy(topology.tailnet, ROOT)
    return topology, text, parse_hujson(text, "the merged policy")


def _ask(bin_dir, text: str, world: World, queries: list[tuple[Device, Device, int]]) -> tuple[str, list[Answer]]:
    devices = list({d.name: d for d in world.devices.values()}.values())
    return ask(bin_dir, text, devices, [(s.name, d.name, port) for s, d, port in queries])


@pytest.mark.parametrize("stack", STACKS)
def test_headscale_agrees_on_every_assertion_of_the_policys_tests(bin_dir, stack):
    _, text, policy = _compiled(stack)
    world = World(policy)
    checked = [a for a in check_policy_tests(policy) if a.outcome is not Outcome.NOT_EVALUATED]
    queries, kept = [], []
    for assertion in checked:
        host, _, port = assertion.dst.rpartition(":")
        src, dst = world.device(assertion.src), world.device(host)
        if src is not None and dst is not None and port.isdigit():
            queries.append((src, dst, int(port)))
            kept.append(assertion)
    assert kept, f"{stack}: no assertion of the policy's tests could be put to headscale"
    failing, answers = _ask(bin_dir, text, world, queries)
    assert failing == "", f"{stack}: headscale runs the policy's own tests and some fail: {failing}"
    disagree = [
        f"{a.src} -> {a.dst}: ours {a.outcome.value} ({a.expect}), headscale {'accepts' if r.accept else 'denies'}"
        for a, r in zip(kept, answers, strict=True)
        if r.accept != (a.expect == "accept") or (a.outcome is Outcome.PASSED) != (r.accept == (a.expect == "accept"))
    ]
    assert not disagree, f"{stack}: the offline evaluator and headscale disagree: {disagree}"


@pytest.mark.parametrize("stack", ["remote (host-bind)", "remote (tailnet-node)", "real tailnet"])
def test_headscale_grants_the_gateway_each_machines_model_port_and_nothing_else_there(bin_dir, stack):
    topology, text, policy = _compiled(stack)
    world = World(policy)
    gateway = world.device(topology.tailnet.target)
    assert gateway is not None, f"{stack}: the policy names no device for the gateway ({topology.tailnet.target})"
    checks = []
    for remote in topology.tailnet.machines:
        machine = world.device(remote.alias)
        assert machine is not None, f"{stack}: the policy names no address for {remote.alias}"
        checks += [(gateway, machine, port, remote.alias) for port in (*remote.ports, *OTHER_PORTS)]
    assert checks, f"{stack}: no remote machine to check"
    _, answers = _ask(bin_dir, text, world, [(g, m, p) for g, m, p, _ in checks])
    for (_, _, port, alias), answer in zip(checks, answers, strict=True):
        ours = policy_allows(policy, topology.tailnet.target, f"{alias}:{port}")
        assert ours in (YES, NO), f"{stack}: the offline evaluator cannot decide {alias}:{port}"
        assert answer.accept == (ours == YES), (
            f"{stack}: for the gateway -> {alias}:{port} headscale {'accepts' if answer.accept else 'denies'}, "
            f"the offline evaluator says {ours}"
        )
        model_port = any(port in m.ports and m.alias == alias for m in topology.tailnet.machines)
        assert answer.accept == model_port, f"{stack}: the gateway may reach {alias}:{port}"


@pytest.mark.parametrize("stack", [TAILNET_APPS_STACK, "real tailnet"])
def test_headscale_grants_each_route_capability_to_its_audiences_alone(bin_dir, stack):
    """Who holds a route's capability at the gateway's node (what serve would forward) is exactly the route's
    audiences, users through their groups included."""
    topology, text, policy = _compiled(stack)
    world = World(policy)
    node = world.device(topology.tailnet.target)
    assert node is not None and topology.tailnet.capabilities, f"{stack}: no node or no tailnet route"
    callers = [(p, d) for p, d in world.devices.items() if d is not node and not p.startswith(("host", "nas"))]
    _, answers = _ask(bin_dir, text, world, [(d, node, topology.tailnet.port) for _, d in callers])
    wrong = [
        f"{principal}: {capability} {'granted' if capability in answer.caps else 'not granted'}"
        for (principal, _), answer in zip(callers, answers, strict=True)
        for capability, audiences in topology.tailnet.capabilities
        if (capability in answer.caps) != (principal in world.members(audiences))
    ]
    assert not wrong, f"{stack}: headscale grants capabilities other than the routes' audiences: {wrong}"


def test_the_world_has_a_device_for_every_principal_the_stacks_name(bin_dir):
    """Guards the two tests above against checking nothing: every stack's tests name devices headscale knows."""
    for stack in STACKS:
        _, _, policy = _compiled(stack)
        world = World(policy)
        named = {t.get("src") for t in policy.get("tests") or []}
        missing = [p for p in named if world.device(p) is None and not str(p).startswith("autogroup:")]
        assert not missing, f"{stack}: no device for {missing}"
    assert list(itertools.islice(STACKS, 1)), "no stacks"
