"""The tailnet policy file this stack applies: the user's base, the gateway's entries, checked.

`merged_policy` is what the render CLI writes to tailnet-policy.hujson and what the Tailscale
component applies; `require_tests_pass` refuses it before anything is applied when one of its own
`tests` fails offline.
"""

from __future__ import annotations

from pathlib import Path

from .errors import SettingsError
from .render.tailnet_policy import gateway_policy
from .tailnet_check import Assertion, Outcome, check_policy_tests
from .tailnet_merge import merge_policy, parse_hujson
from .topology import Topology


def read_policy_base(topology: Topology, project_dir: Path) -> tuple[str | None, str]:
    """The base policy text (None without a base file) and a name for it in messages."""
    relative = topology.tailnet.base_path
    if relative is None:
        return None, "an empty base policy"
    path = project_dir / relative
    try:
        return path.read_text(encoding="utf-8"), relative
    except OSError as error:
        raise SettingsError("tailnetPolicy.base", f"cannot read {relative} ({error.strerror})") from None


def merged_policy(topology: Topology, base_text: str | None, source: str) -> str:
    return merge_policy(base_text, gateway_policy(topology.tailnet), source)


def policy_assertions(policy_text: str) -> list[Assertion]:
    return check_policy_tests(parse_hujson(policy_text, "the merged policy"))


def require_tests_pass(policy_text: str) -> list[Assertion]:
    """Every assertion of the policy's tests; raise SettingsError on the first failing one."""
    assertions = policy_assertions(policy_text)
    failed = [a for a in assertions if a.outcome is Outcome.FAILED]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise SettingsError("tailnetPolicy", f"policy test fails: {failed[0].line()}{more}")
    return assertions
