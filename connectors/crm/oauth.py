"""OAuth2 access tokens for CRM targets: a cached, self-renewing bearer and the refresh-token grant.

``TokenAuth`` is a ``requests.auth.AuthBase`` that asks its ``fetch`` function for a token when it
has none or the one it has is about to expire, and can be told a token was refused (a 401) so the
next request fetches a fresh one. ``OAuth2RefreshToken`` is the grant HubSpot's public apps use
(``POST /oauth/v1/token`` with ``grant_type=refresh_token``); Salesforce's flows live in
``salesforce_auth``. Secrets come by reference; every token is registered for redaction and no
token request or response body is ever put in an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.auth import AuthBase

from concord.errors import PushError
from concord.redact import register_secret
from concord.secrets import SecretRef


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and how long it lives (seconds; None when the server does not say)."""

    value: str
    lifetime: float | None


TokenFetch = Callable[[], Token]


class TokenRefused(PushError):
    """The token endpoint refused or failed: an auth problem, never a record-level one."""


class TokenAuth(AuthBase):
    """Bearer auth with a token fetched on demand, renewed before expiry or after a refusal."""

    def __init__(self, fetch: TokenFetch, *, refresh_margin: float = 60.0) -> None:
        self.fetch = fetch
        self.refresh_margin = refresh_margin
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def token(self) -> str:
        """A valid access token, fetched or renewed when needed."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                got = self.fetch()
                self.fetches += 1
                register_secret(got.value)
                self._token = got.value
                lifetime = got.lifetime if got.lifetime is not None else 3600.0
                self._expires_at = time.monotonic() + max(lifetime - self.refresh_margin, 1.0)
            return self._token

    def invalidate(self) -> None:
        """Forget the token (the server refused it); the next request fetches a new one."""
        with self._lock:
            self._token = None

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """Attach the bearer token to a request."""
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r


def request_token(
    session: requests.Session,
    token_url: str,
    form: dict[str, str],
    timeout: float,
    *,
    flow: str,
) -> dict[str, Any]:
    """POST a token request; return the JSON body or raise ``PushError`` naming flow and URL."""
    from connectors.http import safe_url

    try:
        resp = session.post(
            token_url,
            data=form,
            timeout=timeout,
            headers={"Accept": "application/json"},
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise TokenRefused(
            f"{flow} token request failed ({type(exc).__name__})",
            target="oauth2",
            url=safe_url(token_url),
            retriable=True,
        ) from None
    body: Any = None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        code = body.get("error") if isinstance(body, dict) else None
        raise TokenRefused(
            f"{flow} token request refused" + (f" ({code})" if isinstance(code, str) else ""),
            target="oauth2",
            url=safe_url(token_url),
            status=resp.status_code,
            retriable=resp.status_code >= 500 or resp.status_code == 429,
        )
    return body


def _lifetime(body: dict[str, Any]) -> float | None:
    try:
        return float(body["expires_in"]) if "expires_in" in body else None
    except (TypeError, ValueError):
        return None


class OAuth2RefreshToken(BaseModel):
    """OAuth2 refresh-token grant (HubSpot public apps).

    A long-lived refresh token is exchanged for short-lived access tokens, renewed shortly before
    they expire.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["oauth2_refresh_token"]
    token_url: str = Field(default="https://api.hubapi.com/oauth/v1/token", pattern=r"^https?://")
    client_id: str
    client_secret: SecretRef
    refresh_token: SecretRef
    refresh_margin_seconds: float = Field(default=60.0, ge=0)

    def build(self, session: requests.Session, timeout: float) -> TokenAuth:
        """The token auth for this grant."""

        def fetch() -> Token:
            body = request_token(
                session,
                self.token_url,
                {
                    "grant_type": "refresh_token",
                    "client_id": self.client_id,
                    "client_secret": self.client_secret.resolve(),
                    "refresh_token": self.refresh_token.resolve(),
                },
                timeout,
                flow="OAuth2 refresh-token",
            )
            return Token(str(body["access_token"]), _lifetime(body))

        return TokenAuth(fetch, refresh_margin=self.refresh_margin_seconds)
