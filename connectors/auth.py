"""HTTP authentication styles, chosen by ``type`` in YAML; secrets come only by reference.

Each style is a small ``requests.auth.AuthBase`` that adds credentials to a request. The HTTP
client applies it only to requests for the configured origin, so a next-link or redirect to
another host never receives credentials.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.auth import AuthBase, HTTPBasicAuth

from concord.secrets import SecretRef


class _AuthModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoAuth(_AuthModel):
    type: Literal["none"] = "none"

    def build(self, session: requests.Session, timeout: float) -> AuthBase | None:
        return None


class BearerAuth(_AuthModel):
    type: Literal["bearer"]
    token: SecretRef

    def build(self, session: requests.Session, timeout: float) -> AuthBase:
        return _HeaderAuth("Authorization", f"Bearer {self.token.resolve()}")


class BasicAuth(_AuthModel):
    type: Literal["basic"]
    username: str
    password: SecretRef

    def build(self, session: requests.Session, timeout: float) -> AuthBase:
        return HTTPBasicAuth(self.username, self.password.resolve())


class ApiKeyAuth(_AuthModel):
    type: Literal["api_key"]
    key: SecretRef
    name: str = "X-API-Key"
    location: Literal["header", "query"] = "header"

    def build(self, session: requests.Session, timeout: float) -> AuthBase:
        value = self.key.resolve()
        if self.location == "header":
            return _HeaderAuth(self.name, value)
        return _QueryAuth(self.name, value)


class OAuth2ClientCredentials(_AuthModel):
    """OAuth2 client-credentials grant; the token is refreshed shortly before it expires."""

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: SecretRef
    scope: str | None = None
    refresh_margin_seconds: float = 60.0

    def build(self, session: requests.Session, timeout: float) -> AuthBase:
        return _OAuth2Token(self, session, timeout)


AuthConfig = Annotated[
    NoAuth | BearerAuth | BasicAuth | ApiKeyAuth | OAuth2ClientCredentials,
    Field(discriminator="type"),
]


class _HeaderAuth(AuthBase):
    def __init__(self, header: str, value: str) -> None:
        self.header, self.value = header, value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers[self.header] = self.value
        return r


class _QueryAuth(AuthBase):
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.prepare_url(r.url, {self.name: self.value})
        return r


class _OAuth2Token(AuthBase):
    def __init__(
        self, cfg: OAuth2ClientCredentials, session: requests.Session, timeout: float
    ) -> None:
        self.cfg, self.session, self.timeout = cfg, session, timeout
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        from concord.errors import SourceError
        from concord.redact import register_secret

        data: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_id": self.cfg.client_id,
            "client_secret": self.cfg.client_secret.resolve(),
        }
        if self.cfg.scope:
            data["scope"] = self.cfg.scope
        resp = self.session.post(self.cfg.token_url, data=data, timeout=self.timeout)
        if resp.status_code != 200:
            raise SourceError(
                "OAuth2 token request refused",
                source="oauth2",
                url=self.cfg.token_url,
                status=resp.status_code,
            )
        body = resp.json()
        self._token = str(body["access_token"])
        register_secret(self._token)
        lifetime = float(body.get("expires_in", 3600))
        self._expires_at = time.monotonic() + max(lifetime - self.cfg.refresh_margin_seconds, 1.0)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r
