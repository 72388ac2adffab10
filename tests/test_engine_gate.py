"""The engine tests cannot be skipped by CI: where no engine answers they skip on a developer's machine
(one line saying how to start one) and fail under CI, which `.ci/run` declares."""

from __future__ import annotations

import pytest

from harness.stacks import ROOT
from tests.conftest import cannot_run


def _outcome() -> BaseException:
    """What `cannot_run` raises, caught here: a skip escaping would skip this test instead of failing it."""
    try:
        cannot_run("no engine")
    except (pytest.fail.Exception, pytest.skip.Exception) as raised:
        return raised
    raise AssertionError("cannot_run returned")


def test_an_engine_test_that_cannot_run_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    outcome = _outcome()
    assert isinstance(outcome, pytest.fail.Exception), (
        f"under CI an engine test that cannot run would {type(outcome).__name__} instead of failing: unseen"
    )
    monkeypatch.delenv("CI")
    assert isinstance(_outcome(), pytest.skip.Exception), "a developer without Docker would get failures, not a skip"


def test_ci_runs_the_suite_with_ci_set():
    script = (ROOT / ".ci" / "run").read_text()
    assert "export CI=true" in script and "scripts/test" in script, (
        "CI would run the suite without CI=true: an engine test that cannot run would skip, unseen"
    )
