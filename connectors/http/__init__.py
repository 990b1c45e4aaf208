"""The HTTP kit every connector uses: one client, one retry policy, one of each guard.

REST sources, SOAP sources (zeep's transport goes through it) and CRM targets all send through
``HttpClient``, so they share one set of rules (see docs/connectors-rest.md, "The HTTP kit"):

- ``HttpSettings`` / ``TlsSettings``: the ``http:`` section (timeout, retries, size cap, rate,
  ``tls``: verify, CA bundle, client certificate).
- ``RetryPolicy``: ``verdict`` (answer, retry, fatal, give up) and ``delay`` (backoff with full
  jitter, ``Retry-After`` first).
- ``RateLimiter``: one request budget per connector, shared by its threads.
- ``OriginGuard``: only the configured origins are sent to; ``SizeGuard``: answers capped.
- ``Side``: errors are the source's (``SourceError``) or the target's (``PushError``).
- Auth styles (``NoAuth``, ``BearerAuth``, ``BasicAuth``, ``ApiKeyAuth``,
  ``OAuth2ClientCredentials``, ``OAuth2RefreshToken``) and the one OAuth ``TokenCache``.
"""

from connectors.http.auth import (
    ApiKeyAuth,
    AuthConfig,
    BasicAuth,
    BearerAuth,
    HeaderAuth,
    NoAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from connectors.http.client import AuthStyle, HttpClient, HttpResponse
from connectors.http.guards import Origin, OriginGuard, SizeGuard, origin, safe_url
from connectors.http.rate import RateLimiter
from connectors.http.retry import RETRIABLE_STATUS, RetryPolicy, Verdict, retry_after_seconds
from connectors.http.settings import HttpSettings, TlsSettings
from connectors.http.side import Side
from connectors.http.tokens import (
    Token,
    TokenAuth,
    TokenCache,
    grant_auth,
    request_token,
    token_client,
)

__all__ = [
    "RETRIABLE_STATUS",
    "ApiKeyAuth",
    "AuthConfig",
    "AuthStyle",
    "BasicAuth",
    "BearerAuth",
    "HeaderAuth",
    "HttpClient",
    "HttpResponse",
    "HttpSettings",
    "NoAuth",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "Origin",
    "OriginGuard",
    "RateLimiter",
    "RetryPolicy",
    "Side",
    "SizeGuard",
    "TlsSettings",
    "Token",
    "TokenAuth",
    "TokenCache",
    "Verdict",
    "grant_auth",
    "origin",
    "request_token",
    "retry_after_seconds",
    "safe_url",
    "token_client",
]
