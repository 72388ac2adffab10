"""Evaluate the CrossGuard pack on what the program registers, the way the engine would.

Registered inputs are deserialized by the policy SDK (secrets become plaintext, as policies see them)
and wrapped in its unknown-value proxy; each resource policy runs on every resource, each stack
policy once on all of them. A policy that meets an unknown value is recorded as not run, as the
engine reports it during preview.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from harness.program_run import ProgramRun
from harness.pulumi_internals import UnknownValueError, engine_view
from harness.stacks import ROOT

sys.path.insert(0, str(ROOT / "policy"))  # the pack imports its modules as the Pulumi CLI runs them
import gateway_rules  # noqa: E402


@dataclass(frozen=True)
class Violation:
    policy: str
    level: EnforcementLevel
    resource: str
    message: str

    def describe(self, stack_file: str) -> str:
        return f"{stack_file}: policy '{self.policy}' ({self.level.value}) on {self.resource}: {self.message}"


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def evaluate_pack(
    run: ProgramRun, project: str = "tailnet-llm-gateway", stack: str = "dev", policies=None
) -> tuple[list[Violation], list[str]]:
    """All violations, and the names of policies that could not run on unknown values."""
    policies = gateway_rules.POLICIES if policies is None else policies
    resources = []
    for registered in run.resources:
        urn = f"urn:pulumi:{stack}::{project}::{registered.type}::{registered.name}"
        props = engine_view(registered.inputs)
        resources.append(PolicyResource(registered.type, props, urn, registered.name, _options(), None, None, [], {}))

    violations: list[Violation] = []
    not_run: list[str] = []
    for policy in policies:

        def report(message: str, urn: str | None = None, _policy=policy, _default: str = "stack") -> None:
            violations.append(Violation(_policy.name, _policy.enforcement_level, urn or _default, message))

        try:
            if isinstance(policy, ResourceValidationPolicy):
                for resource in resources:
                    args = ResourceValidationArgs(
                        resource.resource_type, resource.props, resource.urn, resource.name, resource.opts, None, {}
                    )
                    policy.validate(args, lambda m, u=None, r=resource, p=policy: report(m, u, p, r.urn))
            else:
                policy.validate(StackValidationArgs(resources, {}), report)
        except UnknownValueError:
            not_run.append(policy.name)
    return violations, not_run


def mandatory(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == EnforcementLevel.MANDATORY]
