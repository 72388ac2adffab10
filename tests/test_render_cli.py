"""The render CLI contract: files, flags, and exit status 2 with one line."""

from __future__ import annotations

import copy
import subprocess
import sys

from harness.stacks import ROOT, write_stack


def _render(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tailnet_llm_gateway", "render", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_render_writes_every_file_of_a_host_bind_stack(tmp_path):
    result = _render("--stack", "dev", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Caddyfile",
        "clients.json",
        "gateway_auth.py",
        "gateway_start.py",
        "limits.json",
        "litellm.yaml",
        "tailnet-policy.hujson",
    ], "render does not write every file of a host-bind stack"


def test_render_is_deterministic_across_runs(tmp_path):
    _render("--stack", "dev", "--out", str(tmp_path / "a"))
    _render("--stack", "dev", "--out", str(tmp_path / "b"))
    for name in ("Caddyfile", "litellm.yaml", "gateway_auth.py", "tailnet-policy.hujson"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), f"{name} is not stable"


def test_upstream_and_listen_reach_every_file(tmp_path):
    result = _render(
        "--stack",
        "dev",
        "--out",
        str(tmp_path),
        "--upstream",
        "llamacpp=127.0.0.1:9101",
        "--upstream",
        "model-gateway=127.0.0.1:9102",
        "--listen",
        "127.0.0.1:9100",
    )
    assert result.returncode == 0, result.stderr
    caddyfile = (tmp_path / "Caddyfile").read_text()
    assert "http://127.0.0.1:9100 {" in caddyfile and "reverse_proxy 127.0.0.1:9102" in caddyfile, (
        "--listen or --upstream did not reach the Caddyfile"
    )
    assert "api_base: http://127.0.0.1:9101/v1" in (tmp_path / "litellm.yaml").read_text(), (
        "--upstream did not reach LiteLLM's api_base"
    )


def test_bad_setting_exits_2_with_one_line_naming_it(tmp_path, dev_values):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    dev_values["routes"][0]["upstream"] = "nobody"
    write_stack(tmp_path, "broken", dev_values)
    result = _render("--stack", "broken", "--out", str(tmp_path / "out"), "--project-dir", str(tmp_path))
    assert result.returncode == 2, "bad settings were not refused with exit status 2"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "routes[0].upstream" in lines[0], f"not one clear line: {result.stderr!r}"
    assert "Traceback" not in result.stderr, "a bad setting gave a traceback"
    assert not (tmp_path / "out").exists(), "files were written for bad settings"


def test_unknown_upstream_service_exits_2(tmp_path):
    result = _render("--stack", "dev", "--out", str(tmp_path), "--upstream", "grafana=127.0.0.1:3000")
    assert result.returncode == 2 and "grafana" in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
        "an unknown --upstream service was not refused in one line"
    )


def test_wildcard_listen_exits_2(tmp_path):
    result = _render("--stack", "dev", "--out", str(tmp_path), "--listen", "0.0.0.0:8080")
    assert result.returncode == 2 and "every interface" in result.stderr, "a local check would listen on the LAN"


def test_malformed_flag_exits_2_with_one_line(tmp_path):
    result = _render("--stack", "dev", "--out", str(tmp_path), "--upstream", "llamacpp")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_stack_file_exits_2(tmp_path):
    result = _render("--stack", "nope", "--out", str(tmp_path))
    assert result.returncode == 2 and "Pulumi.nope.yaml" in result.stderr, "a missing stack file was not named"


def test_failing_policy_test_exits_2_after_writing_the_policy(tmp_path, dev_values):
    import shutil

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    shutil.copytree(ROOT / "tailnet", tmp_path / "tailnet")
    dev_values["tailnetPolicy"]["tests"]["outsiders"] = ["bob@example.com"]  # a member of group:llm-users
    write_stack(tmp_path, "leaky", dev_values)
    result = _render("--stack", "leaky", "--out", str(tmp_path / "out"), "--project-dir", str(tmp_path))
    assert result.returncode == 2, "a policy whose own tests fail would be accepted"
    assert "bob@example.com deny llm-gateway-host:443: failed" in result.stderr, "the failing policy test is not named"
    assert (tmp_path / "out" / "tailnet-policy.hujson").exists(), "the failing policy is not there to read"
    assert not (tmp_path / "out" / "Caddyfile").exists(), "files for a stack whose policy fails were rendered"


def test_rendered_policy_keeps_the_base_and_adds_the_gateway(tmp_path):
    _render("--stack", "dev", "--out", str(tmp_path))
    policy = (tmp_path / "tailnet-policy.hujson").read_text()
    assert "// Admins can reach everything on port 22 of tagged servers." in policy, "the user's comments were lost"
    assert '"dst": ["llm-gateway-host"], "ip": ["tcp:443"]' in policy, "the gateway's grant is missing"


def test_malformed_port_in_the_base_policy_exits_2_with_one_line(tmp_path, dev_values):
    import shutil

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    shutil.copytree(ROOT / "tailnet", tmp_path / "tailnet")
    base = tmp_path / "tailnet" / "dev-base.hujson"
    base.write_text(base.read_text().replace('"dst": ["tag:server:22"]', '"dst": ["tag:server:ssh"]'))
    write_stack(tmp_path, "ports", dev_values)
    result = _render("--stack", "ports", "--out", str(tmp_path / "out"), "--project-dir", str(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "tailnetPolicy.base" in lines[0] and "tag:server:ssh" in lines[0], "the malformed entry is not named"


def _route(values: dict, path: str) -> dict:
    return next(r for r in values["routes"] if r["path"] == path)


INJECTED_MODEL = "m'] = None\nimport os\nX = ['"
# What once leaked the master key or added a route that skips SSO, set as a careless operator could.
INJECTIONS = {
    "respond serving the master key": (
        lambda v: _route(v, "/healthz").update(respond="{env.LITELLM_MASTER_KEY}"),
        "routes[1].respond",
    ),
    "a placeholder in the sign-in redirect": (
        lambda v: v["sso"].update(startPath="/oauth2/start{env.LITELLM_MASTER_KEY}"),
        "sso.startPath",
    ),
    "a directive after the SSO auth path": (
        lambda v: v["sso"].update(authPath="/oauth2/auth\n\t\t}\n\t\thandle /open/* {"),
        "sso.authPath",
    ),
    "a header list with a space": (
        lambda v: v["sso"].update(copyHeaders={"X-Auth-Request-Email": "X-Forwarded-Email X-Other"}),
        "sso.copyHeaders.X-Auth-Request-Email",
    ),
    "a service host with a block": (
        lambda v: v["services"]["dashboard"].update(host="dashboard:8080 {\n}\nhandle /x"),
        "services.dashboard.host",
    ),
    "a certificate file name with a line": (
        lambda v: v["tls"].update(certFile="tailnet.crt\n\thandle /open/* {\n\t\treverse_proxy dashboard:8080\n\t}"),
        "tls.certFile",
    ),
    "a key file name adding a route without SSO": (
        lambda v: v["tls"].update(keyFile="tailnet.key\n\thandle /open/* {\n\t\treverse_proxy dashboard:8080\n\t}"),
        "tls.keyFile",
    ),
    "a model name breaking out of the auth module": (
        lambda v: v["models"].update({INJECTED_MODEL: {"backend": "llamacpp", "model": "m"}}),
        f"models[{INJECTED_MODEL!r}]",
    ),
}


def test_settings_that_would_inject_exit_2_naming_the_setting_and_write_nothing(tmp_path, dev_values):
    """Each value is refused by its grammar: the CLI writes no file and says which setting in one line."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "tailnet").mkdir()
    (tmp_path / "tailnet" / "dev-base.hujson").write_text((ROOT / "tailnet" / "dev-base.hujson").read_text())
    for case, (inject, setting) in INJECTIONS.items():
        values = copy.deepcopy(dev_values)
        inject(values)
        write_stack(tmp_path, "dev", values)
        out = tmp_path / f"out-{len(case)}"
        result = _render("--stack", "dev", "--out", str(out), "--project-dir", str(tmp_path))
        assert result.returncode == 2, f"{case}: render exited {result.returncode}: {result.stdout}"
        assert result.stderr.count("\n") == 1 and f"setting '{setting}'" in result.stderr, (
            f"{case}: not one line naming {setting}: {result.stderr!r}"
        )
        assert not out.exists(), f"{case}: files were written"


def test_a_stack_name_that_would_inject_is_refused_before_any_file_is_read(tmp_path):
    result = _render("--stack", "dev.yaml\nimport sso", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--stack" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists(), "files were written for an injected stack name"
