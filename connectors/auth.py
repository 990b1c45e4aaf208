"""HTTP authentication styles, chosen by ``type`` in YAML; secrets come only by reference.

Each style is a small ``requests.auth.AuthBase`` that adds credentials to a request. The HTTP
client applies it only to requests for the configured origin, so a next-link or redirect to
another host never receives credentials. The OAuth2 client-credentials style caches its token,
refreshes it ``refresh_margin_seconds`` before it expires (at most half its lifetime early) and
can be told to drop it when the API answers 401.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.auth import AuthBase, HTTPBasicAuth

from concord.errors import SourceError
from concord.redact import register_secret
from concord.secrets import SecretRef


class _AuthModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoAuth(_AuthModel):
    """No authentication."""

    type: Literal["none"] = "none"

    def build(self, session: requests.Session, timeout: float) -> AuthBase | None:
        """Nothing to attach."""
        return None


class BearerAuth(_AuthModel):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: SecretRef

    def build(self, session: requests.Session, timeout: float) -> AuthBase:
        """The bearer header, token resolved now."""
        return _HeaderAuth("Authorization", f"Bearer {self.token.resolve()}")


class BasicAuth(_AuthModel):
    """HTTP Basic with a username and a password reference."""

    type: Literal["basic"]
    username: str
    password: SecretRef

    def build(self, session: requests.Session, timeout: float) -> AuthBase:
        """Basic auth, password resolved now."""
        return HTTPBasicAuth(self.username, self.password.resolve())


class ApiKeyAuth(_AuthModel):
    """An API key in a header or a query parameter."""

    type: Literal["api_key"]
    key: SecretRef
    name: str = "X-API-Key"
    location: Literal["header", "query"] = "header"

    def build(self, session: requests.Session, timeout: float) -> AuthBase:
        """The key in its header or query parameter, resolved now."""
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
        """A bearer token from the client-credentials grant, renewed before it expires."""
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
    """Fetches and caches a client-credentials token; thread-safe, refreshed before expiry."""

    def __init__(
        self, cfg: OAuth2ClientCredentials, session: requests.Session, timeout: float
    ) -> None:
        self.cfg, self.session, self.timeout = cfg, session, timeout
        self.owner = "oauth2"  # the connector's name, set by the HTTP client, for errors
        self.clock: Callable[[], float] = time.monotonic
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._expires_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the token (the API said 401): the next request fetches a new one."""
        with self._lock:
            self._token = None

    def _fail(self, message: str, status: int | None = None) -> SourceError:
        return SourceError(
            f"OAuth2 token request failed: {message}",
            source=self.owner,
            url=safe_token_url(self.cfg.token_url),
            status=status,
        )

    def _fetch(self) -> None:
        data: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_id": self.cfg.client_id,
            "client_secret": self.cfg.client_secret.resolve(),
        }
        if self.cfg.scope:
            data["scope"] = self.cfg.scope
        try:
            resp = self.session.post(
                self.cfg.token_url, data=data, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise self._fail(f"connection failed ({type(exc).__name__})") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200:
            reason = body.get("error") if isinstance(body, dict) else None
            raise self._fail(
                f"refused ({reason})" if isinstance(reason, str) else "refused", resp.status_code
            )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise self._fail("the response has no access_token", resp.status_code)
        self._token = body["access_token"]
        register_secret(self._token)
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        margin = min(self.cfg.refresh_margin_seconds, lifetime / 2)
        self._expires_at = self.clock() + max(lifetime - margin, 1.0)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r


def safe_token_url(url: str) -> str:
    """The token URL for messages (no userinfo, secret-looking query values masked)."""
    from connectors.http import safe_url

    return safe_url(url)
