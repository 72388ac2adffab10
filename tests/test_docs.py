"""The README is a front page and docs/ the manual: every relative link resolves, every command of this
package shown in them parses, and the ones that need only the repository run."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from harness.stacks import ROOT
from tailnet_llm_gateway.cli import _parser, main

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
COMMAND = "python -m tailnet_llm_gateway "
# Commands that read only this repository (a stack file) and write where they are told.
RUNS_HERE = ("render", "diagram")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = [line.lstrip("#") for line in _prose(page) if re.match(r"#{1,6} ", line)]
    return {_slug(h) for h in headings}


def _prose(page: Path) -> list[str]:
    """The page's lines outside fenced and indented code blocks."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and not line.startswith("    "):
            lines.append(line)
    return lines


def _code(page: Path) -> list[str]:
    """The page's lines inside fenced and indented code blocks (indented ones also inside list items)."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or re.match(r"( {4}| {6,})\S", line):
            lines.append(line)
    return lines


def _links(page: Path) -> list[str]:
    return [m for line in _prose(page) for m in re.findall(r"\]\(([^)\s]+)\)", line)]


def _commands() -> list[tuple[str, list[str]]]:
    """Each command of this package in a code block: (where, its arguments), up to a shell operator."""
    found = []
    for page in PAGES:
        for line in _code(page):
            # A command, not a mention of the module in a code listing (`python -m ... render|diagram|...`).
            if COMMAND not in line or line.split(COMMAND, 1)[0].endswith("`"):
                continue
            lexer = shlex.shlex(line.split(COMMAND, 1)[1], posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            argv = []
            for token in lexer:
                if set(token) <= set("();|&<>"):
                    break
                argv.append(token)
            found.append((f"{page.relative_to(ROOT)}: {line.strip()}", argv))
    return found


def test_the_readme_is_a_front_page_of_at_most_250_lines():
    lines = len(README.read_text().splitlines())
    assert lines <= 250, f"the README has {lines} lines: move the manual's parts to docs/"


def test_the_readme_shows_exactly_two_set_up_commands():
    section = README.read_text().split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in section.splitlines() if line.startswith("    ")]
    assert commands == ["pulumi up", "scripts/test"], f"the set-up section shows {commands}"


def test_the_ci_runs_the_readmes_test_command():
    assert "exec scripts/test" in (ROOT / ".ci" / "run").read_text(), "CI does not run the README's test command"


def test_every_page_of_docs_is_linked_from_the_readme():
    links = set(_links(README))
    unlinked = [p.name for p in DOCS if f"docs/{p.name}" not in links]
    assert not unlinked, f"docs no reader finds from the README: {unlinked}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    broken = []
    for link in _links(page):
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and (path.suffix != ".md" or anchor not in _anchors(path)):
            broken.append(f"{link} (no such heading)")
    assert not broken, f"{page.name} links nowhere: {broken}"


def test_the_pages_show_commands_of_every_kind_a_newcomer_needs():
    kinds = {argv[0] for _, argv in _commands() if argv}
    assert {"render", "diagram", "doctor", "client-config", "smoke", "usage"} <= kinds, (
        f"commands the docs no longer show: {kinds}"
    )


@pytest.mark.parametrize(("where", "argv"), _commands(), ids=[w for w, _ in _commands()])
def test_every_command_shown_parses(where, argv):
    try:
        _parser().parse_args(argv)
    except SystemExit as stopped:
        pytest.fail(f"{where}: the command line is refused (exit {stopped.code})")


@pytest.mark.parametrize(
    ("where", "argv"),
    [(w, a) for w, a in _commands() if a and a[0] in RUNS_HERE],
    ids=[w for w, a in _commands() if a and a[0] in RUNS_HERE],
)
def test_every_command_that_needs_only_the_repository_runs(where, argv, tmp_path):
    args = list(argv)
    if "--out" in args:
        args[args.index("--out") + 1] = str(tmp_path / "out")
    else:
        args += ["--out", str(tmp_path / "out")]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        status = main(args)
    assert status == 0, f"{where}: exits {status}: {err.getvalue()}"
    assert (tmp_path / "out").exists(), f"{where}: wrote nothing"
