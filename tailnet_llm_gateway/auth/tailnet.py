"""Auth `tailnet`: the gateway's own node says who calls and which application capabilities the tailnet
policy grants them (serve's Tailscale-User-* and Tailscale-App-Capabilities, trusted only from the node's
pinned address). An API route names its caller to LiteLLM as `tailnet:<login>` (`tailnet:device:<address>`
for a tagged device); a route to a web app (not LiteLLM, no allowPaths) is a page for granted people,
told to the app in the headers it trusts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from policy.gateway_contract import CLIENT_HEADER, TAILNET, TAILNET_NODE, markers
from policy.gateway_contract import caddyfile as shapes

from ..errors import SettingsError
from ..render.caddyfile.proxy import proxy
from ..render.caddyfile.writer import json_error
from ..settings import grammar
from ..settings.fields import IdentityHeader, audience
from .api import ApiAccess, ApiMode, ApiOptions, forwarded_paths
from .mode import Access, RouteFacts

if TYPE_CHECKING:
    from ..render.caddyfile.writer import Writer
    from ..topology import Topology
    from ..topology.routes import Route

# Tailnet callers reach LiteLLM as `tailnet:<login>` (`tailnet:device:<its tailnet address>` for a tagged
# device): what LiteLLM learns of them (its custom auth reads the prefix, and each gets the tailnet limits).
TAILNET_CLIENT_PREFIX = "tailnet:"
# What of a tailnet caller's identity a browser route hands its upstream: the login (Tailscale-User-Login,
# usually an e-mail address, hence `email` too) and the display name (Tailscale-User-Name).
IdentityField = Literal["login", "email", "name"]
# What a tailnet browser route hands its app unless it says otherwise: the caller's login, in the header
# trusted-header sign-in most often reads (Open WebUI's WEBUI_AUTH_TRUSTED_EMAIL_HEADER, oauth2-proxy's).
DEFAULT_IDENTITY_HEADERS: dict[IdentityField, str] = {"email": "X-Forwarded-Email"}
# Where each part of the caller's identity comes from: the node's serve sets these for a user's device.
IDENTITY_SOURCES = {"login": "Tailscale-User-Login", "email": "Tailscale-User-Login", "name": "Tailscale-User-Name"}
# An application capability is named after a domain its owner controls (Tailscale's convention).
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_CAPABILITY = re.compile(rf"^{_LABEL}(\.{_LABEL})+/[A-Za-z0-9][A-Za-z0-9/_.-]*$")
# Why a browser is turned away: a page, since a person reads it. No brace, quote or backtick (it is
# written inside a Caddyfile token).
REFUSED_PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>403 Forbidden</title></head><body>"
    "<h1>Forbidden</h1><p>This page is for people on the tailnet whom its policy grants access. Ask the "
    "tailnet's admin for access, or open it from a device signed in as yourself (a tagged device has no "
    "user).</p></body></html>"
)
# Why a state-changing request from another site's page is turned away.
CROSS_SITE_PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>403 Forbidden</title></head><body>"
    "<h1>Forbidden</h1><p>A page of another site asked this app to change something on your behalf. The "
    "gateway refuses such requests: open the app itself and try again.</p></body></html>"
)
# Methods a browser may send from any page without changing anything (a form or a script of another site
# can also send these; the app must not change state on them).
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class TailnetOptions(ApiOptions):
    # The application capability the tailnet policy grants the route's callers (default:
    # <tailnetHost>/cap/<route>), and who gets it (default: tailnetPolicy.audiences).
    capability: str | None = None
    audiences: tuple[Annotated[str, AfterValidator(audience)], ...] | None = Field(default=None, min_length=1)
    # Browser routes (to a web app, without allowPaths): the header the app trusts for each part of the
    # caller's identity (default: {email: X-Forwarded-Email}).
    identity_headers: dict[IdentityField, IdentityHeader] | None = Field(default=None, min_length=1)
    # Browser routes: let pages of other sites send state-changing requests (POST, PUT, PATCH, DELETE) to
    # the app; refused by default, since tailnet identity rides on every request a browser makes. The value
    # is the reason, kept in the settings for whoever reads them next.
    allow_cross_site: Annotated[str, Field(min_length=8), AfterValidator(grammar.fixed_text)] | None = None

    @field_validator("identity_headers")
    @classmethod
    def _one_header_each(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            lowered = [v.lower() for v in value.values()]
            twice = sorted({t for t in value.values() if lowered.count(t.lower()) > 1})
            if twice:
                raise ValueError(f"{twice[0]!r} would carry two parts of the identity; give each its own header")
        return value

    @field_validator("capability")
    @classmethod
    def _capability_name(cls, value: str | None) -> str | None:
        if value is not None:
            if not _CAPABILITY.fullmatch(value):
                raise ValueError(f"{value!r} is not a capability name such as example.com/cap/llm")
            if value.startswith("tailscale.com/"):
                raise ValueError(f"{value!r}: tailscale.com/ capabilities are Tailscale's own")
        return value


@dataclass(frozen=True)
class TailnetApiAccess(ApiAccess):
    capability: str = ""
    audiences: tuple[str, ...] = ()

    def grant(self) -> tuple[str, tuple[str, ...]]:
        return self.capability, self.audiences


@dataclass(frozen=True)
class TailnetPageAccess(Access):
    """A web app for people: which header gets which part of the caller's identity, in this order, and
    whether pages of other sites may send it state-changing requests."""

    capability: str = ""
    audiences: tuple[str, ...] = ()
    identity_headers: tuple[tuple[str, str], ...] = ()
    cross_site_writes: bool = False

    def grant(self) -> tuple[str, tuple[str, ...]]:
        return self.capability, self.audiences

    def told_headers(self) -> tuple[str, ...]:
        return tuple(header for _, header in self.identity_headers)


class TailnetMode(ApiMode):
    name = TAILNET
    Options = TailnetOptions

    def build(self, facts: RouteFacts, options: Any) -> TailnetApiAccess | TailnetPageAccess:
        assert isinstance(options, TailnetOptions)
        settings, spec, where = facts.settings, facts.spec, facts.where
        page = not facts.to_gateway and options.allow_paths is None
        only_pages = (
            ("identityHeaders", options.identity_headers, f"an API route names its caller in {CLIENT_HEADER}"),
            (
                "allowCrossSite",
                options.allow_cross_site,
                "API routes refuse other sites' pages unless corsOrigins lists them",
            ),
        )
        for key, value, instead in only_pages:
            if value is not None and not page:
                raise SettingsError(
                    f"{where}.{key}",
                    f"applies only to a tailnet route to a web app (not LiteLLM, no allowPaths): {instead}",
                )
        if settings.exposure != TAILNET_NODE:
            raise SettingsError(
                f"{where}.auth",
                "'tailnet' needs exposure tailnet-node: only the gateway's own node can vouch for a caller, "
                "and in host-bind mode nothing trustworthy sets its headers (use 'sso' for pages, 'bearer' for APIs)",
            )
        if settings.networks[facts.edge_network].subnet is None:
            raise SettingsError(
                f"networks.{facts.edge_network}.subnet",
                f"{where} uses auth 'tailnet', so the edge must know the node's address: pin a subnet",
            )
        slug = spec.path.strip("/*").replace("/", "-") or "root"
        capability = options.capability or f"{settings.tailnet_host}/cap/{slug}"
        audiences = options.audiences or settings.tailnet_policy.audiences
        if page:
            told = options.identity_headers or DEFAULT_IDENTITY_HEADERS
            return TailnetPageAccess(
                capability=capability,
                audiences=audiences,
                identity_headers=tuple(told.items()),
                cross_site_writes=options.allow_cross_site is not None,
            )
        return TailnetApiAccess(
            forwarded_paths=forwarded_paths(facts, options),
            cors_origins=options.cors_origins,
            capability=capability,
            audiences=audiences,
        )

    def guard(self) -> str:
        return "the tailnet policy guards it"

    def write(self, w: Writer, route: Route, topology: Topology) -> None:
        if isinstance(route.access, TailnetPageAccess):
            _page(w, route, route.access, topology)
        else:
            super().write(w, route, topology)

    def name_caller(self, w: Writer, route: Route, topology: Topology) -> None:
        capability, _ = route.access.grant() or ("", ())
        w.line(f"# A caller the tailnet policy granted {capability}, as the node's serve says (it sets the")
        w.line("# header itself; a client's copy is dropped unless the request comes from the node). A user's")
        w.line("# device carries its login; a tagged device has none, and is named by its tailnet address, which")
        w.line("# serve sets in X-Forwarded-For (each device is limited on its own).")
        w.open(f"@{markers.TAILNET_CALLER}")
        w.line(shapes.capability_check(capability))
        w.line("header_regexp X-Forwarded-For `^[0-9A-Fa-f.:]+$`")
        w.close()
        device = f"{TAILNET_CLIENT_PREFIX}device:{{http.request.header.X-Forwarded-For}}"
        w.line(shapes.name_client(markers.TAILNET_CALLER, device))
        w.open("@tailnet_user")
        w.line(shapes.capability_check(capability))
        w.line("header Tailscale-User-Login *")
        w.close()
        login = f"{TAILNET_CLIENT_PREFIX}{{http.request.header.Tailscale-User-Login}}"
        w.line(shapes.name_client("tailnet_user", login))

    def refusal(self, w: Writer, route: Route) -> str:
        capability, _ = route.access.grant() or ("", ())
        return json_error(
            f"Authentication Error: this route needs the tailnet capability {capability}.", "auth_error", 401
        )


def _var(field: str) -> str:
    return f"tailnet_{field}"


def _page(w: Writer, route: Route, access: TailnetPageAccess, topology: Topology) -> None:
    assert route.upstream is not None
    name = route.upstream.name
    # The catch-all is the site's bare `handle` (everything no other block takes), as for SSO pages.
    directive = shapes.route_head(None if route.is_catch_all else route.path, route.strip_prefix)
    w.line(f"# {route.path} goes to {name} for the people the tailnet policy granted {access.capability}, as the")
    w.line("# node's serve says (it sets the headers itself; a client's copy is dropped unless it comes from the")
    w.line("# node). A tagged device has no user: it is refused. No SSO: the tailnet already said who it is.")
    w.open(directive)
    w.open("route")
    w.line(f"import {markers.IDENTITY_SNIPPET}")
    w.open(f"@{markers.TAILNET_CALLER}")
    w.line(shapes.capability_check(access.capability))
    w.line("header Tailscale-User-Login *")
    w.close()
    w.line("vars tailnet_granted no")
    w.line("# Read now, before any proxying: what reaches the app is what was checked here.")
    for field in sorted({f for f, _ in access.identity_headers}):
        w.line(f"vars @{markers.TAILNET_CALLER} {_var(field)} {{http.request.header.{IDENTITY_SOURCES[field]}}}")
    w.line(f"vars @{markers.TAILNET_CALLER} tailnet_granted yes")
    w.line("@not_granted not vars tailnet_granted yes")
    w.line('header @not_granted Content-Type "text/html; charset=utf-8"')
    w.line(f"respond @not_granted `{REFUSED_PAGE}` 403")
    _refuse_cross_site_writes(w, access, topology)
    w.line(f"# {name} trusts these headers for who is signed in; set after the proxy dropped hop-by-hop headers,")
    w.line("# so no `Connection` header removes or replaces them.")
    proxy(w, topology, route.upstream, {header: f"{{vars.{_var(field)}}}" for field, header in access.identity_headers})
    w.close()
    w.close()
    w.close()


def _site_origin(topology: Topology) -> str:
    """CEL: the origin the site's own pages send (the node's HTTPS name; on loopback, as the request says)."""
    base = topology.site.redirect_base
    if "{" not in base:
        return f"'{base}'"
    return "{http.request.scheme} + '://' + {http.request.hostport}"


def _refuse_cross_site_writes(w: Writer, access: TailnetPageAccess, topology: Topology) -> None:
    """Tailnet identity rides on every request a granted person's browser makes, whichever page sent it: a
    state-changing request from another site's page (Origin another, or null; Sec-Fetch-Site not same-origin)
    is a forgery unless the route's settings say otherwise."""
    if access.cross_site_writes:
        w.line("# Pages of other sites may send this app state-changing requests: allowCrossSite says why.")
        return
    w.line("# A state-changing request from another site's page (forged in a granted person's browser) is refused.")
    safe = ", ".join(f"'{m}'" for m in SAFE_METHODS)
    origin = "{http.request.header.Origin}"
    fetch_site = "{http.request.header.Sec-Fetch-Site}"
    condition = (
        f"!({{http.request.method}} in [{safe}]) && "
        f"(({origin} != '' && {origin} != {_site_origin(topology)}) || {fetch_site} in ['cross-site', 'same-site'])"
    )
    w.line(f"@cross_site_write expression `{condition}`")
    w.line('header @cross_site_write Content-Type "text/html; charset=utf-8"')
    w.line(f"respond @cross_site_write `{CROSS_SITE_PAGE}` 403")
