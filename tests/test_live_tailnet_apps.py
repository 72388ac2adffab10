"""Browser apps by tailnet identity, with the real Caddy and LiteLLM on loopback in tailnet-node mode: the
tailnet apps' stack (Open WebUI at /* and the dashboard at /dash/*, both `auth: tailnet`, no oauth2-proxy),
with recording stand-ins for the apps. Requests "from the node" come from its loopback stand-in address
with the headers serve sets; every other source is a client on the tailnet side of the node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from harness import fakes
from harness.loopback import LoopbackStack
from harness.stacks import NODE_ADDRESS, TAILNET_APPS_STACK, WEBUI_IDENTITY, new_project, tailnet_apps_stack_values

WEBUI_CAPABILITY = "llm.tail0a1b2c.ts.net/cap/root"
DASH_CAPABILITY = "llm.tail0a1b2c.ts.net/cap/dash"
LOGIN, NAME = "alice@example.com", "Alice Example"


@dataclass
class AppsEdge:
    stack: LoopbackStack
    base_url: str
    webui: fakes.FakeServer
    dashboard: fakes.FakeServer

    def webui_headers(self) -> list[dict[str, str]]:
        """The headers of each request Open WebUI received, lower-cased."""
        return [{k.lower(): v for k, v in record[2].items()} for record in self.webui.httpd.requests]


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> Iterator[AppsEdge]:
    work = tmp_path_factory.mktemp("tailnet-apps")
    project = new_project(work / "project", TAILNET_APPS_STACK, tailnet_apps_stack_values())
    stack = LoopbackStack(TAILNET_APPS_STACK, work, project=project, node_address=NODE_ADDRESS)
    ports = stack.ports
    servers = [
        fakes.FakeServer(fakes.OpenAIBackendHandler, ports["llamacpp"], "llamacpp").start(),
        fakes.FakeServer(fakes.OpenAIBackendHandler, ports["llamacpp-embed"], "llamacpp-embed").start(),
    ]
    webui = fakes.FakeServer(fakes.HeaderEchoHandler, ports["open-webui"], "open-webui").start()
    dashboard = fakes.FakeServer(fakes.HeaderEchoHandler, ports["dashboard"], "dashboard").start()
    try:
        yield AppsEdge(stack, stack.start(), webui, dashboard)
    finally:
        stack.stop()
        for server in [*servers, webui, dashboard]:
            server.stop()


def _serve(capability: str | None = WEBUI_CAPABILITY, login: str | None = LOGIN) -> list[tuple[str, str]]:
    """What the node's serve sets: the caller's grants of the accepted capabilities (JSON, as Go writes it)
    and, for a user's device, the login and display name."""
    grants = {capability: [{}]} if capability else {}
    headers = [("Tailscale-App-Capabilities", json.dumps(grants, separators=(",", ":")))]
    if login is not None:
        headers += [("Tailscale-User-Login", login), ("Tailscale-User-Name", NAME)]
    return headers


def _get(url: str, headers: list[tuple[str, str]], source: str | None = NODE_ADDRESS) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(transport=transport, timeout=30) as client:
        return client.get(url, headers=headers)


def _send(method: str, url: str, headers: list[tuple[str, str]], source: str | None = NODE_ADDRESS) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(transport=transport, timeout=30) as client:
        return client.request(method, url, headers=headers, content=b'{"title": "x"}')


def _reached(apps: AppsEdge, response: httpx.Response) -> dict[str, str] | None:
    """The headers Open WebUI received for this answer (None: the request never reached it)."""
    if response.status_code != 200 or response.json().get("upstream") != "open-webui":
        return None
    return {k.lower(): v for k, v in response.json()["headers"].items()}


def test_a_granted_person_reaches_the_app_with_their_login_in_the_header_it_trusts(apps):
    received = _reached(apps, _get(f"{apps.base_url}/chats/1", _serve()))
    assert received is not None, "a person the policy granted the capability was refused"
    expected = {header.lower(): LOGIN if field == "email" else NAME for field, header in WEBUI_IDENTITY.items()}
    assert {k: received.get(k) for k in expected} == expected, (
        f"Open WebUI would not know who is signed in: it got {received}"
    )


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("no capability", _serve(capability=None)),
        ("another route's capability", _serve(capability=DASH_CAPABILITY)),
        ("a tagged device (no user)", _serve(login=None)),
        ("nothing from serve", []),
    ],
)
def test_a_caller_without_the_capability_gets_a_403_page(apps, case, headers):
    before = len(apps.webui.httpd.requests)
    response = _get(f"{apps.base_url}/", headers)
    assert response.status_code == 403 and response.headers["content-type"].startswith("text/html"), (
        f"{case}: answered {response.status_code} {response.headers.get('content-type')}, not a 403 page"
    )
    assert "<h1>Forbidden</h1>" in response.text, f"{case}: the refusal is not a page a person can read"
    assert len(apps.webui.httpd.requests) == before, f"{case}: the request still reached the app"


def test_the_same_headers_from_anywhere_but_the_node_are_refused(apps):
    before = len(apps.webui.httpd.requests)
    response = _get(f"{apps.base_url}/", _serve(), source=None)
    assert response.status_code == 403 and len(apps.webui.httpd.requests) == before, (
        "a client that wrote Tailscale's headers itself was taken for a tailnet user"
    )


FORGED = [("X-Forwarded-Email", "mallory@example.com"), ("X-Forwarded-Name", "Mallory")]


def test_a_forged_identity_header_never_reaches_the_app(apps):
    refused_before = len(apps.webui.httpd.requests)
    refused = _get(f"{apps.base_url}/", FORGED, source=None)
    assert refused.status_code == 403 and len(apps.webui.httpd.requests) == refused_before, (
        "a client that only wrote X-Forwarded-Email reached the app"
    )
    received = _reached(apps, _get(f"{apps.base_url}/", [*_serve(), *FORGED]))
    assert received is not None
    assert received.get("x-forwarded-email") == LOGIN and "mallory" not in json.dumps(received).lower(), (
        f"the app saw the client's own identity header: {received}"
    )


@pytest.mark.parametrize(
    "connection",
    [
        "X-Forwarded-Email",
        "x-forwarded-email, X-Forwarded-Name",
        "Tailscale-User-Login",
        "Tailscale-App-Capabilities, Tailscale-User-Login",
        "close, X-FORWARDED-EMAIL",
    ],
)
def test_hop_by_hop_headers_cannot_remove_or_replace_the_identity(apps, connection):
    headers = [*_serve(), *FORGED, ("Connection", connection), ("Keep-Alive", "timeout=5")]
    response = _get(f"{apps.base_url}/", headers)
    received = _reached(apps, response)
    assert received is not None, f"Connection: {connection} kept a granted person out ({response.status_code})"
    assert received.get("x-forwarded-email") == LOGIN and received.get("x-forwarded-name") == NAME, (
        f"Connection: {connection} removed or replaced the identity the app trusts: {received}"
    )


def test_each_route_asks_for_its_own_capability(apps):
    dash = _get(f"{apps.base_url}/dash/", _serve(capability=DASH_CAPABILITY))
    assert dash.status_code == 200 and dash.json()["upstream"] == "dashboard", "the dashboard refused its audience"
    received = {k.lower(): v for k, v in dash.json()["headers"].items()}
    assert received.get("x-forwarded-email") == LOGIN, "the dashboard got no identity (its default header)"
    assert _get(f"{apps.base_url}/dash/", _serve()).status_code == 403, "Open WebUI's capability opened the dashboard"


def test_the_api_still_takes_keys_beside_tailnet_pages(apps):
    key = {"Authorization": f"Bearer {apps.stack.master_key}"}
    assert httpx.get(f"{apps.base_url}/llm/v1/models", headers=key, timeout=30).status_code == 200
    assert httpx.get(f"{apps.base_url}/llm/v1/models", timeout=30).status_code == 401


# ---- tests of these tests: edges broken on purpose must fail the probes above ---------------------------


def test_identity_set_before_the_proxy_fails_the_hop_by_hop_probe(apps):
    """request_header runs before the proxy drops the headers `Connection` names: the naive way."""
    set_up = "\t\t\t\theader_up X-Forwarded-Email {vars.tailnet_email}\n"

    def edit(text: str) -> str:
        return text.replace(set_up, "").replace(
            "\t\t\treverse_proxy open-webui",
            "\t\t\trequest_header X-Forwarded-Email {vars.tailnet_email}\n\t\t\treverse_proxy open-webui",
            1,
        )

    base = apps.stack.edge("mutant-set-early", edit=edit)
    received = _reached(apps, _get(f"{base}/", [*_serve(), ("Connection", "X-Forwarded-Email")]))
    assert received is not None and received.get("x-forwarded-email") != LOGIN, (
        "the probe no longer tells an identity a Connection header can remove"
    )


def test_a_page_that_forgets_the_person_check_fails_the_tagged_device_probe(apps):
    # The last one is Open WebUI's (/*): Caddy's order puts the catch-all last.
    person = "\t\t\t\theader Tailscale-User-Login *\n"
    base = apps.stack.edge("mutant-no-person", edit=lambda text: "".join(text.rsplit(person, 1)))
    assert _get(f"{base}/", _serve(login=None)).status_code != 403, (
        "the probe no longer tells a page that lets tagged devices in"
    )


# How another site's page shows in a browser's request: its origin, an opaque one (sandboxed frames, file
# pages), or only the fetch metadata.
CROSS_SITE = {
    "other-origin": [("Origin", "https://evil.example")],
    "null-origin": [("Origin", "null")],
    "fetch-site-cross": [("Sec-Fetch-Site", "cross-site")],
    "fetch-site-same-site": [("Sec-Fetch-Site", "same-site"), ("Origin", "https://other.tail0a1b2c.ts.net")],
}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("page", CROSS_SITE)
def test_another_sites_page_changes_nothing_through_a_granted_persons_browser(apps, page, method):
    before = len(apps.webui.httpd.requests)
    response = _send(method, f"{apps.base_url}/api/chats/new", _serve() + CROSS_SITE[page])
    assert response.status_code == 403 and "<h1>Forbidden</h1>" in response.text, (
        f"a {method} from {page} got {response.status_code}: any site could act as the signed-in person"
    )
    assert len(apps.webui.httpd.requests) == before, f"a {method} from {page} still reached the app"


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_the_apps_own_pages_still_change_things(apps, method):
    own = [("Origin", apps.base_url), ("Sec-Fetch-Site", "same-origin")]
    response = _send(method, f"{apps.base_url}/api/chats/new", _serve() + own)
    assert _reached(apps, response) is not None, f"the app's own {method} was refused: {response.status_code}"


def test_a_link_from_another_site_still_opens_the_app(apps):
    response = _get(f"{apps.base_url}/chats/1", _serve() + [("Sec-Fetch-Site", "cross-site")])
    assert _reached(apps, response) is not None, (
        f"following a link from another site was refused: {response.status_code}"
    )
