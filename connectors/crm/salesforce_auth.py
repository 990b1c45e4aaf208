"""Salesforce OAuth2 flows for server-to-server pushes: client credentials and JWT bearer.

Both post to ``<login_url>/services/oauth2/token`` and get an access token back (Salesforce does
not say how long it lives: it lasts the org's session timeout, so the target renews it when a
call is refused with 401). The JWT bearer flow signs a short assertion (``iss`` = consumer key,
``sub`` = username, ``aud`` = login URL, ``exp`` a few minutes ahead) with the connected app's
private key, RS256, via PyJWT. Secrets (client secret, private key PEM) come by reference. The
token is kept in the kit's one ``TokenCache`` and fetched through its token client, so a refused
grant is this target's ``PushError``.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from concord.secrets import SecretRef
from connectors.http import HttpSettings, Side, TokenAuth, grant_auth

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def token_url(login_url: str) -> str:
    """The OAuth2 token endpoint of a Salesforce login URL."""
    return login_url.rstrip("/") + "/services/oauth2/token"


class SalesforceClientCredentials(BaseModel):
    """OAuth2 client-credentials flow of a connected app (runs as the app's configured user)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["salesforce_client_credentials"]
    login_url: str = Field(pattern=r"^https?://", description="the org's My Domain URL")
    client_id: str
    client_secret: SecretRef
    session_seconds: float = Field(default=7200.0, gt=0, description="org session timeout")

    def build(self, side: Side, settings: HttpSettings) -> TokenAuth:
        """The token auth for the client-credentials flow."""

        def form() -> dict[str, str]:
            return {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret.resolve(),
            }

        return grant_auth(
            side,
            settings,
            token_url(self.login_url),
            form,
            flow="Salesforce client-credentials",
            lifetime_of=lambda body: self.session_seconds,
        )


class SalesforceJwtBearer(BaseModel):
    """OAuth2 JWT bearer flow: an assertion signed with the connected app's private key."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["salesforce_jwt_bearer"]
    login_url: str = Field(
        default="https://login.salesforce.com", pattern=r"^https?://", description="token host"
    )
    audience: str | None = Field(default=None, description="defaults to login_url")
    client_id: str = Field(description="the connected app's consumer key (iss)")
    username: str = Field(description="the Salesforce user to act as (sub)")
    private_key: SecretRef = Field(description="PEM of the RSA key whose certificate the app has")
    assertion_seconds: int = Field(default=180, ge=30, le=300)
    session_seconds: float = Field(default=7200.0, gt=0)

    def assertion(self) -> str:
        """A signed JWT assertion for the bearer flow (RS256)."""
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.username,
            "aud": (self.audience or self.login_url).rstrip("/"),
            "exp": now + self.assertion_seconds,
        }
        return jwt.encode(claims, self.private_key.resolve(), algorithm="RS256")

    def build(self, side: Side, settings: HttpSettings) -> TokenAuth:
        """The token auth for the JWT bearer flow."""
        return grant_auth(
            side,
            settings,
            token_url(self.login_url),
            lambda: {"grant_type": JWT_GRANT, "assertion": self.assertion()},
            flow="Salesforce JWT bearer",
            lifetime_of=lambda body: self.session_seconds,
        )
