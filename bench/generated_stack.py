"""Large generated stacks, to measure how rendering and program evaluation grow."""

from __future__ import annotations

from harness.stacks import ROOT, stack_values
from tailnet_llm_gateway.plan import build_plan
from tailnet_llm_gateway.settings import Settings


def generated_values(routes: int, models: int, backends: int = 10) -> dict:
    """The dev stack plus `routes` protected services and `models` models over `backends` backends."""
    values = stack_values("dev")
    for i in range(routes):
        values["services"][f"app{i}"] = {"port": 8000 + i, "networks": ["proxy-net"]}
        values["routes"].append({"path": f"/app{i}/*", "upstream": f"app{i}", "stripPrefix": True, "auth": "sso"})
    for b in range(backends):
        values["services"][f"backend{b}"] = {"port": 8080, "networks": ["backend"]}
    for m in range(models):
        values["models"][f"model-{m}"] = {"backend": f"backend{m % backends}", "model": f"model-{m}"}
    return values


def render_stack(values: dict) -> dict[str, str]:
    """What `python -m tailnet_llm_gateway render` does, in-process: the plan's files."""
    return build_plan(Settings.from_mapping(values), "bench", ROOT).files_by_name()
