"""An offline evaluator for a tailnet policy's `tests`, for the constructs this project emits.

It answers "would Tailscale let SRC connect to HOST:PORT?" from `acls` and `grants`, knowing users,
groups, tags, `autogroup:member`, `hosts`, `*`, port lists and ranges, grants with `ip` and acls with
`dst` ports. Anything else that could decide an answer (an IP range as a source, `via`, postures,
other autogroups, a device's own IP) makes the assertion "not evaluated": never counted as passed.
Tailscale itself runs the same tests again when the policy is applied.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import SettingsError

YES, NO, UNKNOWN = "yes", "no", "unknown"


class Outcome(Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_EVALUATED = "not evaluated"


@dataclass(frozen=True)
class Assertion:
    test: int
    src: str
    expect: str  # "accept" or "deny"
    dst: str
    outcome: Outcome
    reason: str

    def line(self) -> str:
        return f"tests[{self.test}] {self.src} {self.expect} {self.dst}: {self.outcome.value} ({self.reason})"


_PORTS = re.compile(r"^(\*|\d+(-\d+)?)(,(\*|\d+(-\d+)?))*$")


def _require_ports(where: str, text: str, ports: str) -> None:
    if not _PORTS.fullmatch(ports.replace(" ", "")) or any(int(n) > 65535 for n in re.findall(r"\d+", ports)):
        raise SettingsError(
            "tailnetPolicy.base", f"{where} {text!r} has no valid port list (*, N, N-M, or several joined by commas)"
        )


def _require_well_formed(policy: dict[str, Any]) -> None:
    """Every port the evaluator reads is well formed; Tailscale would refuse the policy otherwise."""
    for index, acl in enumerate(policy.get("acls") or []):
        for dst in acl.get("dst") or acl.get("ports") or []:
            _require_ports(f"acls[{index}].dst", dst, _split_host_port(str(dst))[1])
    for index, grant in enumerate(policy.get("grants") or []):
        for spec in grant.get("ip") or []:
            text = str(spec)
            _require_ports(f"grants[{index}].ip", text, text.split(":", 1)[1] if ":" in text else text)
    for index, test in enumerate(policy.get("tests") or []):
        for expect in ("accept", "deny"):
            for dst in test.get(expect) or []:
                _require_ports(f"tests[{index}].{expect}", dst, _split_host_port(str(dst))[1])


def check_policy_tests(policy: dict[str, Any]) -> list[Assertion]:
    """The outcome of every assertion of the policy's `tests`; SettingsError if a port is malformed."""
    _require_well_formed(policy)
    evaluator = _Evaluator(policy)
    results = []
    for index, test in enumerate(policy.get("tests") or []):
        src = test.get("src", "")
        proto = test.get("proto", "tcp")
        for expect in ("accept", "deny"):
            for dst in test.get(expect) or []:
                allowed, reason = evaluator.allows(src, dst, proto)
                if allowed == UNKNOWN:
                    outcome = Outcome.NOT_EVALUATED
                elif (allowed == YES) == (expect == "accept"):
                    outcome = Outcome.PASSED
                else:
                    outcome = Outcome.FAILED
                results.append(Assertion(index, src, expect, dst, outcome, reason))
    return results


def policy_allows(policy: dict[str, Any], src: str, dst: str, proto: str = "tcp") -> str:
    """YES, NO or UNKNOWN: would Tailscale let `src` connect to `dst` (host:port) under this policy?"""
    return _Evaluator(policy).allows(src, dst, proto)[0]


def _split_host_port(dst: str) -> tuple[str, str]:
    host, _, ports = dst.rpartition(":")
    return host, ports


def _port_matches(spec: str, port: int) -> bool:
    for part in spec.split(","):
        part = part.strip()
        if part == "*":
            return True
        if "-" in part:
            low, high = part.split("-", 1)
            if int(low) <= port <= int(high):
                return True
        elif part and int(part) == port:
            return True
    return False


class _Evaluator:
    def __init__(self, policy: dict[str, Any]) -> None:
        self.groups: dict[str, list[str]] = policy.get("groups") or {}
        self.hosts: dict[str, str] = policy.get("hosts") or {}
        self.acls = policy.get("acls") or []
        self.grants = policy.get("grants") or []

    def allows(self, src: str, dst: str, proto: str) -> tuple[str, str]:
        host, port_text = _split_host_port(dst)
        try:
            port = int(port_text)
        except ValueError:
            return UNKNOWN, f"cannot read the port of {dst!r}"
        unknown_reason = None
        for kind, index, rule_src, rule_dsts in self._rules(proto, port):
            src_match = self._any(rule_src, lambda entry: self._src_matches(entry, src))
            if src_match == NO:
                continue
            dst_match = self._any(rule_dsts, lambda entry: self._dst_matches(entry, host, src))
            if src_match == YES and dst_match == YES:
                return YES, f"allowed by {kind}[{index}]"
            if dst_match != NO:
                unknown_reason = unknown_reason or f"{kind}[{index}] uses a construct this check cannot evaluate"
        if unknown_reason:
            return UNKNOWN, unknown_reason
        return NO, "no acl or grant allows it"

    def _rules(self, proto: str, port: int) -> Iterator[tuple[str, int, list[str | None], list[str]]]:
        """(kind, index, sources, destination hosts) of each rule that covers this protocol and port."""
        for index, acl in enumerate(self.acls):
            if acl.get("action", "accept") != "accept" or acl.get("proto", proto) != proto:
                continue
            hosts = []
            for dst in acl.get("dst") or acl.get("ports") or []:
                host, ports = _split_host_port(dst)
                if _port_matches(ports, port):
                    hosts.append(host)
            if hosts:
                yield "acls", index, acl.get("src") or acl.get("users") or [], hosts
        for index, grant in enumerate(self.grants):
            if grant.get("via") or grant.get("srcPosture"):
                yield "grants", index, [None], grant.get("dst") or []  # decided by things not known offline
                continue
            if any(self._ip_covers(spec, proto, port) for spec in grant.get("ip") or []):
                yield "grants", index, grant.get("src") or [], grant.get("dst") or []

    @staticmethod
    def _ip_covers(spec: str, proto: str, port: int) -> bool:
        if spec == "*":
            return True
        if ":" in spec:
            spec_proto, ports = spec.split(":", 1)
            return spec_proto in (proto, "*") and _port_matches(ports, port)
        return _port_matches(spec, port)

    @staticmethod
    def _any(entries: Iterable[Any], match: Callable[[Any], str]) -> str:
        answers = {match(entry) for entry in entries}
        return YES if YES in answers else (UNKNOWN if UNKNOWN in answers else NO)

    def _src_matches(self, entry: str | None, src: str) -> str:
        if entry is None:
            return UNKNOWN
        if entry == "*" or entry == src:
            return YES
        if entry.startswith("group:"):
            return YES if src in self.groups.get(entry, []) else NO
        if entry == "autogroup:member":
            # Every user in a test is taken as a member of the tailnet; a tag is never a member.
            return YES if "@" in src else NO
        if entry == "autogroup:tagged":
            return YES if src.startswith("tag:") else NO
        if entry.startswith("tag:") or "@" in entry:
            return NO
        return UNKNOWN  # IPs, CIDRs, hosts and other autogroups as sources

    def _dst_matches(self, entry: str, host: str, src: str) -> str:
        if entry == "*" or entry == host:
            return YES
        if entry == "autogroup:self":
            return YES if host == src and "@" in host else (NO if host.startswith("tag:") else UNKNOWN)
        if entry.startswith("group:"):
            return YES if host in self.groups.get(entry, []) else NO
        if entry == "autogroup:member":
            return YES if "@" in host else (NO if host.startswith("tag:") else UNKNOWN)
        named_host = host.startswith("tag:") or "@" in host
        if entry.startswith("tag:") or "@" in entry:
            return NO if named_host else UNKNOWN  # equal names matched above
        entry_net, host_net = self._address(entry), self._address(host)
        if entry_net is not None and host_net is not None:
            if entry_net.version != host_net.version:
                return NO
            return YES if host_net.subnet_of(entry_net) else NO  # type: ignore[arg-type]  # versions checked
        return UNKNOWN  # an address against a tag or user: the device's address is not known offline

    def _address(self, name: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        value = self.hosts.get(name, name)
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return None
        return network
