"""The gateway as a component of another Pulumi program: `pip install .`, then `TailnetLLMGateway(name,
settings)` beside resources of the program's own, under Pulumi mocks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pulumi
import pytest

from harness.program_run import ProgramRun, run_program
from harness.stacks import ROOT, stack_values
from tests.policy_run import evaluate_pack, mandatory

COMPONENT = "tailnet-llm-gateway:index:GatewayStack"
PET = ("random:index/randomPet:RandomPet", "homelab-pet")

# A home lab's own program: a resource of its own, then the gateway, its settings read from a JSON file.
PROGRAM = textwrap.dedent(
    """
    import json
    from pathlib import Path

    import pulumi
    import pulumi_random as random

    from tailnet_llm_gateway import TailnetLLMGateway

    here = Path(__file__).parent
    pet = random.RandomPet("homelab-pet")
    settings = json.loads((here / "gateway-settings.json").read_text())
    llm = TailnetLLMGateway("llm", settings, project_dir=here, opts=pulumi.ResourceOptions(depends_on=[pet]))
    pulumi.export("llmBaseUrl", llm.api_base_url)
    pulumi.export("petName", pet.id)
    """
)


def _own_program(directory: Path, settings: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "__main__.py").write_text(PROGRAM)
    (directory / "gateway-settings.json").write_text(json.dumps(settings))
    # The settings name the tailnet policy's base file relative to the project.
    shutil.copytree(ROOT / "tailnet", directory / "tailnet", dirs_exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> ProgramRun:
    return run_program({}, project_dir=_own_program(tmp_path_factory.mktemp("homelab"), stack_values("dev")))


@pytest.fixture(scope="module")
def repository_run() -> ProgramRun:
    return run_program(stack_values("dev"))


def test_the_repository_installs_as_a_package_that_renders_without_the_repository(tmp_path):
    # From the tracked files, as a clean clone has them (building writes build/ beside the sources).
    source, target = tmp_path / "clone", tmp_path / "site"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, f"`pip install .` fails: {install.stderr[-2000:]}"
    # Run outside the repository with only the installed copy importable: the package must carry its templates.
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(stack_values("dev")))
    shutil.copytree(ROOT / "tailnet", tmp_path / "tailnet")
    check = textwrap.dedent(
        f"""
        import json, pathlib, tailnet_llm_gateway
        from tailnet_llm_gateway.gateway import settings_plan
        plan = settings_plan(json.loads(pathlib.Path({str(settings)!r}).read_text()), "dev", pathlib.Path.cwd())
        print(json.dumps({{"package": tailnet_llm_gateway.__file__, "files": sorted(plan.files_by_name())}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    ran = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, f"the installed package cannot render a plan on its own: {ran.stderr[-2000:]}"
    result = json.loads(ran.stdout)
    assert Path(result["package"]).is_relative_to(target), f"imported from {result['package']}, not the install"
    assert "Caddyfile" in result["files"] and "gateway_auth.py" in result["files"], (
        f"the installed package renders only {result['files']}"
    )
    installed = {p.name for p in target.iterdir()}
    assert installed == {"tailnet_llm_gateway", "policy", "tailnet_llm_gateway-0.1.0.dist-info"}, (
        f"the package installs more than the product and its contract: {sorted(installed)}"
    )
    assert sorted(p.name for p in (target / "policy").iterdir()) == ["gateway_contract"], (
        "the package installs the policy pack's rules, which a program does not import"
    )


def test_every_resource_of_the_gateway_is_a_child_of_the_component(own_run):
    components = own_run.of_type(COMPONENT)
    assert [c.name for c in components] == ["llm"], "the program's gateway is not one component"
    outside = [
        urn
        for resource, urn in zip(own_run.resources, own_run.urns, strict=True)
        if (resource.type, resource.name) not in {PET, (COMPONENT, "llm")} and f"::{COMPONENT}$" not in urn
    ]
    assert not outside, f"resources of the gateway outside its component: {outside}"
    (pet_urn,) = [u for r, u in zip(own_run.resources, own_run.urns, strict=True) if (r.type, r.name) == PET]
    assert COMPONENT not in pet_urn, "the program's own resource was put under the gateway"


def test_the_component_registers_what_this_repositorys_program_registers(own_run, repository_run):
    def shape(run: ProgramRun, name: str) -> list[tuple[str, str]]:
        # Children are named after the component; the networks and containers by the settings.
        def renamed(resource: str) -> str:
            return "NAME" if resource == name else resource.replace(f"{name}-", "NAME-", 1)

        return sorted((r.type, renamed(r.name)) for r in run.resources if (r.type, r.name) != PET)

    assert shape(own_run, "llm") == shape(repository_run, "gateway"), (
        "the component and the repository's program deploy different resources for the same settings"
    )
    assert own_run.exports["llmBaseUrl"] == repository_run.exports["apiBaseUrl"], "the component's outputs differ"


def test_the_policy_pack_passes_on_a_program_that_adds_the_gateway(own_run):
    violations, not_run = evaluate_pack(own_run, project="homelab")
    assert not mandatory(violations), f"the pack refuses the gateway in another program: {mandatory(violations)}"
    assert not not_run, f"policies that could not run: {not_run}"


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (
            lambda s: s.update(tailnetHost="not a host"),
            "setting 'tailnetHost'",
        ),
        (
            lambda s: s["routes"].append({"path": "/dash/*", "upstream": "grafana", "auth": "sso"}),
            "setting 'routes[",
        ),
        (
            lambda s: s.update(masterKey="sk-plaintext-0123456789"),
            "setting 'masterKey': is a secret",
        ),
        (
            lambda s: s["gateway"].update(limits={"memory": "1g"}),
            "setting 'gateway.limits': is now gateway.resources",
        ),
    ],
    ids=["bad host", "route to an unknown service", "key in plain settings", "renamed key"],
)
def test_bad_settings_stop_the_program_with_one_line_naming_the_setting(tmp_path, edit, line):
    settings = stack_values("dev")
    settings.setdefault("gateway", {})
    edit(settings)
    with pytest.raises(pulumi.RunError) as stopped:
        run_program({}, project_dir=_own_program(tmp_path, settings))
    message = str(stopped.value)
    assert "\n" not in message and line in message, f"not one line naming the setting: {message!r}"
    assert stopped.value.__suppress_context__, "the error would carry the settings' traceback"
