"""Settings of single sign-on: the service the edge asks about a browser's session."""

from __future__ import annotations

from pydantic import Field

from .fields import ExactPath, HeaderName, IdentityHeader, Name, StrictModel


class SsoSettings(StrictModel):
    service: Name = "oauth2-proxy"
    auth_path: ExactPath = "/oauth2/auth"
    start_path: ExactPath = "/oauth2/start"
    # SSO response header -> header the protected upstreams trust.
    copy_headers: dict[HeaderName, IdentityHeader] = Field(
        default_factory=lambda: {
            "X-Auth-Request-Email": "X-Forwarded-Email",
            "X-Auth-Request-User": "X-Forwarded-User",
            "X-Auth-Request-Preferred-Username": "X-Forwarded-Preferred-Username",
        }
    )
