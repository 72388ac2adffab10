"""Guarantees of the rendered Caddyfile, read from the text and checked by the real `caddy validate`."""

from __future__ import annotations

import re

import pytest

from components.addresses import HostPort
from components.images import CADDY_VERSION
from components.render.caddyfile import render_caddyfile
from components.settings import Settings
from components.topology import build_topology
from tests.caddy_check import caddy_validate
from tests.processes import binary


def _blocks(caddyfile: str) -> dict[str, str]:
    """Each top-level `handle...` block of the site, keyed by its opening line."""
    blocks, current, depth = {}, None, 0
    for line in caddyfile.splitlines():
        stripped = line.strip()
        if depth == 1 and stripped.startswith(("handle", "handle_path")) and stripped.endswith("{"):
            current = stripped[:-1].strip()
            blocks[current] = ""
        if current is not None:
            blocks[current] += line + "\n"
        depth += stripped.count("{") - stripped.count("}") if not stripped.startswith("#") else 0
        if current is not None and depth == 1 and stripped == "}":
            current = None
    return blocks


@pytest.fixture
def caddyfile(dev_topology) -> str:
    return render_caddyfile(dev_topology, "dev")


def test_caddy_binary_matches_the_deployed_caddy_version():
    import subprocess

    version = subprocess.run([str(binary("caddy")), "version"], capture_output=True, text=True, timeout=30).stdout
    assert version.startswith(f"v{CADDY_VERSION} "), f"tests run Caddy {version!r}, the stack deploys {CADDY_VERSION}"


def test_rendering_is_byte_for_byte_deterministic(dev_values):
    first = render_caddyfile(build_topology(Settings.from_mapping(dev_values)), "dev")
    dev_values["services"] = dict(reversed(list(dev_values["services"].items())))
    dev_values["routes"] = list(reversed(dev_values["routes"]))
    second = render_caddyfile(build_topology(Settings.from_mapping(dev_values)), "dev")
    assert first == second, "the same settings in another order would change the Caddyfile and replace Caddy"


def test_dev_caddyfile_passes_caddy_validate(caddyfile, tmp_path):
    result = caddy_validate(caddyfile, tmp_path)
    assert result.returncode == 0, f"Caddy would refuse the dev Caddyfile:\n{result.stderr[-2000:]}"


def test_listen_variant_passes_caddy_validate(dev_topology, tmp_path):
    local = dev_topology.with_overrides({"llamacpp": HostPort("127.0.0.1", 9)}, HostPort("127.0.0.1", 18080))
    text = render_caddyfile(local, "dev")
    assert "tls " not in text and "http://127.0.0.1:18080 {" in text, "--listen must serve plain HTTP locally"
    result = caddy_validate(text, tmp_path)
    assert result.returncode == 0, f"Caddy would refuse the --listen Caddyfile:\n{result.stderr[-2000:]}"


def test_edge_case_stack_passes_caddy_validate(dev_values, tmp_path):
    """No SSO routes, an IPv6 tailnet address, custom allowed API paths, no stripping."""
    dev_values["tailnetIp"] = "fd7a:115c:a1e0::42"
    dev_values["routes"] = [
        {"path": "/healthz", "respond": "ok", "auth": "none"},
        {"path": "/api/*", "upstream": "model-gateway", "auth": "bearer", "allowPaths": ["/api/v1/*", "/api/health"]},
    ]
    text = render_caddyfile(build_topology(Settings.from_mapping(dev_values)), "edge")
    assert "forward_auth" not in text and "(sso)" not in text, "an unused SSO snippet was rendered"
    result = caddy_validate(text, tmp_path)
    assert result.returncode == 0, f"Caddy would refuse the edge-case Caddyfile:\n{result.stderr[-2000:]}"


def test_site_is_the_tailnet_name_with_the_mounted_tailscale_cert(caddyfile):
    assert "https://gpu-box.tail0a1b2c.ts.net:8443 {" in caddyfile, "the site would not answer to the tailnet name"
    assert "tls /etc/caddy/certs/tailnet.crt /etc/caddy/certs/tailnet.key" in caddyfile, "TLS would not use Tailscale's cert"
    assert "auto_https off" in caddyfile, "Caddy would try ACME for a tailnet name"


def test_llm_route_strips_the_prefix_without_sso(caddyfile):
    block = _blocks(caddyfile)["handle_path /llm/*"]
    assert "import sso" not in block and "forward_auth" not in block, "API clients would be redirected to SSO"
    assert "reverse_proxy model-gateway:11435" in block, "/llm/* would not reach LiteLLM"


def test_llm_route_forwards_only_the_openai_api(caddyfile):
    block = _blocks(caddyfile)["handle_path /llm/*"]
    assert "@not_api not path /v1/*" in block and "respond @not_api" in block, (
        "LiteLLM's docs, admin UI and openapi.json would be reachable without a key"
    )


def test_llm_route_checks_the_key_and_fails_closed(caddyfile):
    block = _blocks(caddyfile)["handle_path /llm/*"]
    checks = [line.strip() for line in block.splitlines() if line.strip().startswith(("respond", "reverse_proxy"))]
    assert checks[0].startswith("respond @no_key_configured") and checks[0].endswith(" 503"), (
        "an empty key would turn the bearer route into an open one"
    )
    assert '@bad_key not vars {http.request.header.Authorization} "Bearer {env.LITELLM_MASTER_KEY}"' in block, (
        "the key check would not compare the exact key"
    )
    assert checks[-1].startswith("reverse_proxy"), "a request could reach LiteLLM before the key check"


def test_every_path_not_declared_as_bypass_runs_forward_auth(caddyfile, dev_topology):
    blocks = _blocks(caddyfile)
    for route in dev_topology.routes:
        head = "handle" if route.is_catch_all else (
            f"handle_path {route.path}" if route.auth == "bearer" and route.strip_prefix else f"handle {route.path}"
        )
        has_sso = "import sso" in blocks[head]
        assert has_sso == (route.auth == "sso"), f"{route.path} ({route.auth}) would {'skip' if route.auth == 'sso' else 'need'} SSO"


def test_sso_401_becomes_a_302_to_the_start_url_with_the_original_url(caddyfile):
    assert "@unauthenticated status 401" in caddyfile
    assert (
        "redir * {scheme}://{hostport}/oauth2/start?rd={scheme}://{hostport}{http.request.orig_uri} 302" in caddyfile
    ), "a signed-out browser would not come back to the page it asked for"


def test_client_identity_headers_are_stripped_on_every_proxied_route(caddyfile):
    for head, block in _blocks(caddyfile).items():
        if "reverse_proxy" in block:
            assert "import strip_client_identity" in block, f"{head}: a client could claim to be someone else"
    snippet = caddyfile.split("(strip_client_identity) {")[1].split("}")[0]
    for name in ("X-Forwarded-Email", "X-Forwarded-User", "X-Auth-Request-*", "Remote-*"):
        assert f"request_header -{name}" in snippet, f"{name} from a client would reach upstreams"


def test_identity_strip_runs_before_forward_auth(caddyfile):
    for head, block in _blocks(caddyfile).items():
        if "import sso" in block:
            assert block.index("import strip_client_identity") < block.index("import sso"), (
                f"{head}: stripping after forward_auth would delete the SSO's own identity headers"
            )
            assert "route {" in block, f"{head}: without `route`, Caddy reorders forward_auth before request_header"


def test_protected_prefix_is_stripped_after_sso(caddyfile):
    block = _blocks(caddyfile)["handle /dash/*"]
    assert block.index("import sso") < block.index("uri strip_prefix /dash") < block.index("reverse_proxy dashboard:8080")


def test_no_secret_in_the_caddyfile(caddyfile):
    assert "{env.LITELLM_MASTER_KEY}" in caddyfile
    assert not re.search(r"sk-[A-Za-z0-9]", caddyfile), "a key literal would sit in the rendered file"


def test_health_listener_stays_on_container_loopback(caddyfile):
    assert "http://127.0.0.1:8080 {\n\tbind 127.0.0.1" in caddyfile, "the health listener would be reachable from other containers"


def test_upstream_override_moves_every_use_of_a_service(dev_topology):
    moved = dev_topology.with_overrides({"oauth2-proxy": HostPort("127.0.0.1", 4999)})
    text = render_caddyfile(moved, "dev")
    assert "oauth2-proxy:4180" not in text and text.count("127.0.0.1:4999") == 2, (
        "forward_auth and the /oauth2/* route must both follow --upstream"
    )


def test_http3_is_off_on_every_server(caddyfile, tmp_path):
    """Caddy would advertise `Alt-Svc: h3=":8443"`, its in-container port, and no UDP port is published."""
    import json
    import subprocess

    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile)
    adapted = subprocess.run([str(binary("caddy")), "adapt", "--config", str(path), "--adapter", "caddyfile"],
                             capture_output=True, text=True, timeout=60, env={"HOME": str(tmp_path)})
    assert adapted.returncode == 0, adapted.stderr[-2000:]
    servers = json.loads(adapted.stdout)["apps"]["http"]["servers"]
    for name, server in servers.items():
        assert server.get("protocols") == ["h1", "h2"], f"server {name} would offer HTTP/3: {server.get('protocols')}"
