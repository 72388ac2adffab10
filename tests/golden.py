"""Golden files: what both dev stacks render, their diagrams (also in the README) and the URNs their
programs register, as checked in.

tests/test_golden.py compares them byte for byte. After a change that is meant to alter them, refresh
and review the diff:

    .venv/bin/python -m tests.golden

A changed URN means Pulumi would replace the resource (or lose track of it): give the resource an
`aliases` entry with its old parent or type before refreshing `urns.txt`.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from harness.program_run import run_program
from harness.stacks import ROOT, stack_values
from tailnet_llm_gateway.cli import main

GOLDEN = ROOT / "tests" / "golden"
STACKS = ("dev", "dev-node")


def rendered(stack: str) -> dict[str, str]:
    """Every file `python -m tailnet_llm_gateway render --stack STACK` writes."""
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        assert main(["render", "--stack", stack, "--out", out]) == 0, "the dev stack no longer renders"
        return {path.name: path.read_text() for path in sorted(Path(out).iterdir())}


def diagram(stack: str) -> str:
    """What `python -m tailnet_llm_gateway diagram --stack STACK` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["diagram", "--stack", stack]) == 0, "the dev stack no longer draws"
    return out.getvalue()


def readme_with(stack: str, drawn: str, readme: str) -> str:
    """The README with the stack's diagram between its markers."""
    start, end = f"<!-- diagram: {stack} -->\n", f"<!-- end of diagram: {stack} -->"
    before, rest = readme.split(start, 1)
    return before + start + drawn + end + rest.split(end, 1)[1]


def urns(stack: str) -> str:
    """The URN of every resource the program registers for the stack, one a line, sorted."""
    return "\n".join(sorted(run_program(stack_values(stack), stack=stack).urns)) + "\n"


def refresh() -> None:
    for stack in STACKS:
        folder = GOLDEN / stack
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, content in rendered(stack).items():
            (folder / name).write_text(content)
        (folder / "urns.txt").write_text(urns(stack))
        drawn = diagram(stack)
        (folder / "diagram.md").write_text(drawn)
        readme = ROOT / "README.md"
        readme.write_text(readme_with(stack, drawn, readme.read_text()))
        print(f"refreshed {folder.relative_to(ROOT)} and its diagram in README.md")


if __name__ == "__main__":
    refresh()
