"""The stack's diagram (`python -m tailnet_llm_gateway diagram`): Mermaid that Mermaid itself parses, showing
every container, network, host port, route and machine the program registers or the plan serves, and kept
current in the README."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from harness.mermaid import mermaid_parse
from harness.program_run import ProgramRun, run_program
from harness.stacks import ROOT, TEST_STACKS, stack_values
from tailnet_llm_gateway.plan import Plan, build_plan
from tailnet_llm_gateway.render.diagram import node_id, render_diagram
from tailnet_llm_gateway.settings import Settings
from tailnet_llm_gateway.topology import EDGE_CONTAINER
from tests.golden import GOLDEN, STACKS

BOX = re.compile(r'^\s*(\w+)(?:\(\(|\{\{|\(\[|\[)"(.*)"(?:\)\)|\}\}|\]\)|\])$')
LINK = re.compile(r'^\s*(.+?) (-->|-\.-)(?:\|"(.*)"\|)? (\w+)$')


@dataclass
class Drawn:
    boxes: dict[str, list[str]] = field(default_factory=dict)
    links: list[tuple[str, str, str, str]] = field(default_factory=list)

    def linked(self, source: str, target: str, arrow: str = "-->") -> list[str]:
        return [label for s, a, label, t in self.links if (s, a, t) == (source, arrow, target)]


def drawn(markdown: str) -> Drawn:
    assert markdown.startswith("```mermaid\n") and markdown.endswith("```\n"), "not a Markdown mermaid block"
    result = Drawn()
    for line in markdown.splitlines()[1:-1]:
        if box := BOX.match(line):
            result.boxes[box[1]] = box[2].split("<br/>")
        elif link := LINK.match(line):
            for source in link[1].split(" & "):
                result.links.append((source, link[2], link[3] or "", link[4]))
    return result


def _slug(stack: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", stack).strip("-")


@pytest.fixture(scope="module", params=sorted(TEST_STACKS))
def stack(request) -> tuple[Plan, ProgramRun, str]:
    values = TEST_STACKS[request.param]()
    name = _slug(request.param)
    plan = build_plan(Settings.from_mapping(values), name, ROOT)
    return plan, run_program(values, stack=name), render_diagram(plan.topology, name)


def test_every_diagram_parses_with_mermaids_own_parser(stack):
    _, _, diagram = stack
    parsed = mermaid_parse(diagram.removeprefix("```mermaid\n").removesuffix("```\n"))
    assert parsed == {"ok": True, "type": "flowchart-v2"}, f"GitHub would not draw the diagram: {parsed}"


def test_every_container_the_program_runs_is_drawn_on_its_networks(stack):
    _, run, diagram = stack
    shown = drawn(diagram)
    containers = {b for b in shown.boxes if b.startswith("c_")}
    assert containers == {node_id("c", n) for n in run.containers}, "the diagram's containers are not the stack's"
    for name, container in run.containers.items():
        assert shown.boxes[node_id("c", name)][0] == name, f"{name}'s box does not name it"
        for network in container.inputs.get("networksAdvanced", []):
            assert shown.linked(node_id("c", name), node_id("net", network["name"]), "-.-"), (
                f"{name} is on {network['name']}, and the diagram does not say so"
            )


def test_every_network_is_drawn(stack):
    plan, run, diagram = stack
    shown = drawn(diagram)
    registered = {r.inputs["name"] for r in run.of_type("docker:index/network:Network")}
    planned = {n.name for n in plan.topology.networks}
    assert registered <= planned, f"networks the program creates that the plan does not list: {registered - planned}"
    for network in planned:
        assert network in shown.boxes.get(node_id("net", network), [""])[0], f"network {network} is not drawn"


def test_every_published_port_is_drawn_at_its_address_pointing_at_its_container(stack):
    _, run, diagram = stack
    shown = drawn(diagram)
    published = [(name, port) for name, c in run.containers.items() for port in c.inputs.get("ports") or []]
    assert published, "the stack publishes no port: this test would check nothing"
    for name, port in published:
        address = f"{port['ip']}:{int(port['external'])}"
        box = node_id("p", address)
        assert shown.boxes.get(box) == [f"host port {address}"], f"host port {address} is not drawn"
        assert shown.linked(box, node_id("c", name)) == [f":{int(port['internal'])}"], (
            f"the diagram does not show host port {address} leading to {name}:{int(port['internal'])}"
        )
    ports = {b for b in shown.boxes if b.startswith("p_")}
    assert len(ports) == len(published), "the diagram draws a host port the stack does not publish"


def test_every_route_is_drawn_from_the_edge_with_its_auth_mode(stack):
    plan, _, diagram = stack
    shown = drawn(diagram)
    edge = node_id("c", EDGE_CONTAINER)
    labels = [label for source, arrow, label, _ in shown.links if (source, arrow) == (edge, "-->")]
    for route in plan.topology.routes:
        assert any(label.startswith(f"{route.path} · {route.auth}") for label in labels), (
            f"route {route.path} ({route.auth}) is not drawn"
        )


def test_every_machine_is_drawn_with_the_ports_the_policy_grants(stack):
    plan, _, diagram = stack
    shown = drawn(diagram)
    for alias, address in plan.declarations["machines"].items():
        machine = next(m for m in plan.topology.tailnet.machines if m.alias == alias)
        assert shown.boxes.get(node_id("m", alias)) == [
            f"{alias} {address}",
            f"granted ports {', '.join(map(str, machine.ports))}",
        ], f"machine {alias} is not drawn with its address and granted ports"
        assert any(target == node_id("m", alias) for _, _, _, target in shown.links), f"nothing reaches {alias}"


def test_who_on_the_tailnet_gets_in_is_drawn(stack):
    plan, _, diagram = stack
    shown = drawn(diagram)
    audiences = plan.declarations["tailnet"]["audiences"]
    assert shown.boxes["tailnet"][1:] == audiences, "the tailnet box does not list who may reach the gateway"
    (entry,) = [label for source, _, label, _ in shown.links if source == "tailnet"]
    assert entry.endswith(" · " + ", ".join(audiences)), f"the way in does not say who may use it: {entry}"


@pytest.mark.parametrize("name", STACKS)
def test_the_dev_stacks_diagrams_are_current_in_the_golden_files_and_the_readme(name):
    diagram = render_diagram(build_plan(Settings.from_mapping(stack_values(name)), name, ROOT).topology, name)
    golden = (GOLDEN / name / "diagram.md").read_text()
    assert golden == diagram, f"the {name} diagram changed: refresh with `python -m tests.golden` and review"
    assert diagram in (ROOT / "README.md").read_text(), (
        f"the README shows an old {name} diagram: `python -m tests.golden` rewrites it"
    )
