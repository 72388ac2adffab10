"""The tailnet policy file this stack applies: the user's base, the gateway's entries, checked.

`checked_policy` gives what the render CLI writes to tailnet-policy.hujson and what the Tailscale
component applies, with the outcome of each of its `tests`; it refuses a policy whose own tests fail
offline, before anything is applied.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..errors import SettingsError
from ..topology import TailnetAccess
from .check import Assertion, Outcome, check_policy_tests
from .entries import gateway_policy
from .merge import merge_policy, parse_hujson


class PolicyTestFailure(SettingsError):
    """One of the merged policy's own tests fails; `policy` is the merged text, to read it in."""

    def __init__(self, problem: str, policy: str) -> None:
        super().__init__("tailnetPolicy", problem)
        self.policy = policy


def _read_base(access: TailnetAccess, project_dir: Path) -> tuple[str | None, str]:
    """The base policy text (None without a base file) and a name for it in messages."""
    relative = access.base_path
    if relative is None:
        return None, "an empty base policy"
    try:
        return (project_dir / relative).read_text(encoding="utf-8"), relative
    except OSError as error:
        raise SettingsError("tailnetPolicy.base", f"cannot read {relative!r} ({error.strerror})") from None


def checked_policy(access: TailnetAccess, project_dir: Path) -> tuple[str, tuple[Assertion, ...]]:
    """The merged policy and every assertion of its tests; PolicyTestFailure on the first failing one."""
    base, source = _read_base(access, project_dir)
    return _checked(access, base, source)


# Pure in its inputs, and the HuJSON parser makes it the slowest step of a plan (about 0.1 s): plans built
# again for the same tailnet part (the render CLI, the benchmark, the tests) reuse it.
@functools.lru_cache(maxsize=64)
def _checked(access: TailnetAccess, base: str | None, source: str) -> tuple[str, tuple[Assertion, ...]]:
    policy = merge_policy(base, gateway_policy(access), source)
    assertions = tuple(check_policy_tests(parse_hujson(policy, "the merged policy")))
    failed = [a for a in assertions if a.outcome is Outcome.FAILED]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise PolicyTestFailure(f"policy test fails: {failed[0].line()}{more}", policy)
    return policy, assertions
