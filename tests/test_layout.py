"""The code stays in small modules: none of the product, the pack, the harness or the benchmark grows past
300 lines (a module that does would be doing more than one thing; split it by what it is about)."""

from __future__ import annotations

from harness.stacks import ROOT

LIMIT = 300
TREES = ("tailnet_llm_gateway", "policy", "harness", "bench")


def test_no_module_is_over_300_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for tree in TREES
        for path in (ROOT / tree).rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert not long, f"modules over {LIMIT} lines: {long}"
