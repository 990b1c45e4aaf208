"""The one OAuth token cache, the bearer auth that reads it, and the token request itself.

``TokenCache`` asks its ``fetch`` function for a token when it has none or the one it has is
inside its refresh margin (``refresh_margin`` seconds before expiry, at most half its lifetime
early), and forgets it when told the API refused it (a 401), so the next request fetches a new
one. Its clock is injectable, so expiry is tested without waiting. Every token is registered for
redaction. ``request_token`` posts a grant to a token endpoint through the kit's client (retries,
TLS, timeouts, size cap, origin guard) and fails with the error of the connector it serves,
naming the flow and the token URL, never the secret or the answer's body.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from requests.auth import AuthBase

from concord.errors import PushError, SourceError
from concord.redact import register_secret
from connectors.http.client import HttpClient
from connectors.http.rate import RateLimiter
from connectors.http.settings import HttpSettings
from connectors.http.side import Side

DEFAULT_LIFETIME = 3600.0
"""Seconds a token is taken to live when the server does not say."""


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and how long it lives (seconds; None when the server does not say)."""

    value: str
    lifetime: float | None = None


TokenFetch = Callable[[], Token]


class TokenCache:
    """One access token, fetched on demand and renewed before it expires or after a refusal."""

    def __init__(
        self,
        fetch: TokenFetch,
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.fetches = 0
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        """A valid access token, fetched or renewed when needed (thread-safe)."""
        with self._lock:
            if self._token is None or self.clock() >= self._expires_at:
                got = self.fetch()
                self.fetches += 1
                register_secret(got.value)
                lifetime = got.lifetime if got.lifetime is not None else DEFAULT_LIFETIME
                margin = min(self.refresh_margin, lifetime / 2)
                self._token = got.value
                self._expires_at = self.clock() + max(lifetime - margin, 1.0)
            return self._token

    def invalidate(self) -> None:
        """Forget the token (the server refused it); the next request fetches a new one."""
        with self._lock:
            self._token = None


class TokenAuth(AuthBase):
    """``Authorization: Bearer <token>`` from a ``TokenCache``; the client renews it after a 401."""

    def __init__(self, cache: TokenCache) -> None:
        self.cache = cache

    def invalidate(self) -> None:
        """Drop the cached token (the HTTP client calls this once after a 401)."""
        self.cache.invalidate()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """Attach the bearer token to a request."""
        r.headers["Authorization"] = f"Bearer {self.cache.token()}"
        return r


def token_client(side: Side, token_url: str, settings: HttpSettings) -> HttpClient:
    """The client for one token endpoint: the connector's settings, only that URL's origin."""
    return HttpClient(
        side,
        None,
        auth=None,
        settings=settings,
        also_allowed=[token_url],
        limiter=RateLimiter(None),
    )


def request_token(
    client: HttpClient, token_url: str, form: Mapping[str, str], *, flow: str
) -> dict[str, Any]:
    """POST a grant; the JSON answer holding ``access_token``, or the side's error (``auth``)."""
    try:
        resp = client.request("POST", token_url, form=form, parse_json=False)
    except (SourceError, PushError) as exc:
        code = exc.body.get("error") if isinstance(exc.body, dict) else None
        reason = "failed" if exc.retriable else "refused"
        raise client.side.error(
            f"{flow} token request {reason}" + (f" ({code})" if isinstance(code, str) else ""),
            url=exc.url,
            status=exc.status,
            retriable=exc.retriable,
            auth=not exc.retriable,
        ) from None
    try:
        body = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise client.side.error(
            f"{flow} token request: the response has no access_token",
            url=client.url(token_url),
            status=resp.status,
            auth=True,
        )
    return body


def grant_auth(
    side: Side,
    settings: HttpSettings,
    token_url: str,
    form: Callable[[], dict[str, str]],
    *,
    flow: str,
    refresh_margin: float = 60.0,
    lifetime_of: Callable[[Mapping[str, Any]], float | None] | None = None,
) -> TokenAuth:
    """Bearer auth whose token comes from posting ``form()`` (secrets resolved then) to a grant.

    ``lifetime_of`` reads how long a token lives from the answer (``expires_in`` by default).
    """
    client = token_client(side, token_url, settings)
    read_lifetime = lifetime_of or lifetime

    def fetch() -> Token:
        body = request_token(client, token_url, form(), flow=flow)
        return Token(body["access_token"], read_lifetime(body))

    return TokenAuth(TokenCache(fetch, refresh_margin=refresh_margin))


def lifetime(body: Mapping[str, Any]) -> float | None:
    """The ``expires_in`` of a token answer in seconds, or None when absent or not a number."""
    try:
        return float(body["expires_in"]) if "expires_in" in body else None
    except (TypeError, ValueError):
        return None
