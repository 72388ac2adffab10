"""The stack files a user copies (examples/): each is read as a stack file, rendered, run under mocks and
through the policy pack with no mandatory violation, says what it is for, and is linked from the README.
The live tests run two of them as they are (tailnet-apps, several-machines: harness.stacks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.stacks import EXAMPLES, ROOT, remote_stack_values, stack_values, tailnet_apps_stack_values
from tailnet_llm_gateway.cli import main
from tests.test_policy_pack import stack_file_violations

EXAMPLE_FILES = sorted(EXAMPLES.glob("Pulumi.*.yaml"))
STORIES = {"gpu-box", "several-machines", "team", "tailnet-apps"}


def _stack(path: Path) -> str:
    return path.name[len("Pulumi.") : -len(".yaml")]


def test_the_examples_tell_the_four_stories():
    assert {_stack(p) for p in EXAMPLE_FILES} == STORIES, (
        "an example a user looks for (one GPU box, several machines, a team, apps by tailnet identity) is missing"
    )


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=_stack)
def test_an_example_renders_from_a_copy_at_the_project_root(example, tmp_path, capsys):
    """Copied to the project root as Pulumi.<stack>.yaml, as its comment says: the render CLI takes it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (project / "tailnet").mkdir()
    (project / "tailnet" / "dev-base.hujson").write_text((ROOT / "tailnet" / "dev-base.hujson").read_text())
    (project / example.name).write_text(example.read_text())
    code = main(["render", "--stack", _stack(example), "--project-dir", str(project), "--out", str(tmp_path / "out")])
    assert code == 0, f"{example.name} does not render: {capsys.readouterr().err}"
    assert (tmp_path / "out" / "Caddyfile").is_file()


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=_stack)
def test_an_example_passes_every_mandatory_rule_under_mocks(example):
    violations = stack_file_violations(example, project_dir=ROOT)
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=_stack)
def test_an_example_says_what_it_is_for(example):
    head = example.read_text().splitlines()[:3]
    assert all(line.startswith("# ") for line in head), f"{example.name} does not open with what it is for"


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=_stack)
def test_the_readme_links_each_example(example):
    assert f"examples/{example.name}" in (ROOT / "README.md").read_text(), f"the README does not link {example.name}"


def test_the_live_tests_run_the_examples_as_written():
    assert tailnet_apps_stack_values() == stack_values("tailnet-apps", EXAMPLES), "tailnet apps: a Python edit"
    assert remote_stack_values("dev-node") == stack_values("several-machines", EXAMPLES), "several machines: an edit"
