"""Both dev stacks render exactly the checked-in files, and register exactly the checked-in URNs."""

from __future__ import annotations

import pytest

from tests.golden import GOLDEN, STACKS, rendered, urns


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_files_are_the_golden_files(stack):
    golden = {
        path.name: path.read_text()
        for path in sorted((GOLDEN / stack).iterdir())
        if path.name not in ("urns.txt", "diagram.md")
    }
    assert rendered(stack) == golden, (
        f"{stack} renders differently from tests/golden/{stack}: if intended, run `python -m tests.golden` and review"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_registered_urns_are_the_golden_urns(stack):
    assert urns(stack) == (GOLDEN / stack / "urns.txt").read_text(), (
        f"a resource of {stack} changed its URN: Pulumi would replace it (add an alias), or refresh the golden list"
    )
