"""HTTP authentication styles, chosen by ``type`` in YAML; secrets come only by reference.

Each style builds a small ``requests.auth.AuthBase`` that adds credentials to a request; the
kit's client attaches it to every request it sends, and its origin guard refuses every URL off
the configured origins first, so credentials never reach another host. The OAuth2 styles keep
their token in one ``TokenCache`` and fetch it through the kit's token client, whose errors
belong to the connector's side (a CRM target's refused client secret is a target's error).
"""

from __future__ import annotations

from typing import Annotated, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.auth import AuthBase, HTTPBasicAuth

from concord.secrets import SecretRef
from connectors.http.settings import HttpSettings
from connectors.http.side import Side
from connectors.http.tokens import TokenAuth, grant_auth


class _AuthModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def query_param(self) -> str | None:
        """The query parameter this style puts a secret in (kept out of stored links)."""
        return None


class NoAuth(_AuthModel):
    """No authentication."""

    type: Literal["none"] = "none"

    def build(self, side: Side, settings: HttpSettings) -> AuthBase | None:
        """Nothing to attach."""
        return None


class BearerAuth(_AuthModel):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: SecretRef

    def build(self, side: Side, settings: HttpSettings) -> AuthBase:
        """The bearer header, token resolved now."""
        return HeaderAuth("Authorization", f"Bearer {self.token.resolve()}")


class BasicAuth(_AuthModel):
    """HTTP Basic with a username and a password reference."""

    type: Literal["basic"]
    username: str
    password: SecretRef

    def build(self, side: Side, settings: HttpSettings) -> AuthBase:
        """Basic auth, password resolved now."""
        return HTTPBasicAuth(self.username, self.password.resolve())


class ApiKeyAuth(_AuthModel):
    """An API key in a header or a query parameter."""

    type: Literal["api_key"]
    key: SecretRef
    name: str = "X-API-Key"
    location: Literal["header", "query"] = "header"

    def query_param(self) -> str | None:
        """The key's query parameter, when it goes in the query."""
        return self.name if self.location == "query" else None

    def build(self, side: Side, settings: HttpSettings) -> AuthBase:
        """The key in its header or query parameter, resolved now."""
        value = self.key.resolve()
        if self.location == "header":
            return HeaderAuth(self.name, value)
        return _QueryAuth(self.name, value)


class OAuth2ClientCredentials(_AuthModel):
    """OAuth2 client-credentials grant; the token is refreshed shortly before it expires."""

    type: Literal["oauth2_client_credentials"]
    token_url: str = Field(pattern=r"^https?://")
    client_id: str
    client_secret: SecretRef
    scope: str | None = None
    refresh_margin_seconds: float = Field(default=60.0, ge=0)

    def build(self, side: Side, settings: HttpSettings) -> TokenAuth:
        """A bearer token from the client-credentials grant, renewed before it expires."""

        def form() -> dict[str, str]:
            grant = {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret.resolve(),
            }
            return grant | ({"scope": self.scope} if self.scope else {})

        return grant_auth(
            side,
            settings,
            self.token_url,
            form,
            flow="OAuth2 client-credentials",
            refresh_margin=self.refresh_margin_seconds,
        )


class OAuth2RefreshToken(_AuthModel):
    """OAuth2 refresh-token grant (HubSpot public apps).

    A long-lived refresh token is exchanged for short-lived access tokens, renewed shortly before
    they expire.
    """

    type: Literal["oauth2_refresh_token"]
    token_url: str = Field(default="https://api.hubapi.com/oauth/v1/token", pattern=r"^https?://")
    client_id: str
    client_secret: SecretRef
    refresh_token: SecretRef
    refresh_margin_seconds: float = Field(default=60.0, ge=0)

    def build(self, side: Side, settings: HttpSettings) -> TokenAuth:
        """The token auth for this grant."""

        def form() -> dict[str, str]:
            return {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self.client_secret.resolve(),
                "refresh_token": self.refresh_token.resolve(),
            }

        return grant_auth(
            side,
            settings,
            self.token_url,
            form,
            flow="OAuth2 refresh-token",
            refresh_margin=self.refresh_margin_seconds,
        )


AuthConfig = Annotated[
    NoAuth | BearerAuth | BasicAuth | ApiKeyAuth | OAuth2ClientCredentials,
    Field(discriminator="type"),
]
"""The auth styles of a REST source."""


class HeaderAuth(AuthBase):
    """Sets one header to a fixed (secret) value."""

    def __init__(self, header: str, value: str) -> None:
        self.header, self.value = header, value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """Set the header."""
        r.headers[self.header] = self.value
        return r


class _QueryAuth(AuthBase):
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.prepare_url(r.url, {self.name: self.value})
        return r
