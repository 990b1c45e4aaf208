"""HTTP for SOAP sources: a session with TLS options and origin-bound credentials, and retries.

The retry loop retries only what retrying can help.

Connection errors, timeouts, 502, 503, 504, 408 and 429 are retried with exponential backoff and
full jitter (``Retry-After`` wins, up to a cap). A 500 is returned to the caller, which reads the
SOAP Fault in it: a fault is an answer, retrying it gives the same fault. 401/403 and other
statuses stop at once. Credentials (HTTP Basic, bearer) are attached only to requests for the
configured origins, redirects are not followed, every call has a timeout and bodies are capped.
Errors name the source, the operation and the URL without secrets, never headers or whole bodies.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.auth import AuthBase

from concord.errors import SourceError
from concord.redact import redact
from connectors.http import HttpSettings, origin, retry_after_seconds, safe_url

RETRIABLE_STATUS = frozenset({408, 429, 502, 503, 504})


class TlsSettings(BaseModel):
    """TLS for the SOAP endpoint and WSDL: verification is on unless switched off explicitly."""

    model_config = ConfigDict(extra="forbid")

    verify: bool = True
    ca_bundle: str | None = Field(default=None, description="PEM file of trusted CAs")
    client_cert: str | None = Field(default=None, description="PEM client certificate (mTLS)")
    client_key: str | None = Field(default=None, description="its key, when not in client_cert")


class OriginBoundAuth(AuthBase):
    """Applies ``inner`` only to requests for one of ``origins``; others go without credentials."""

    def __init__(self, inner: AuthBase, origins: set[tuple[str, str, int | None]]) -> None:
        self.inner, self.origins = inner, origins

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """Attach the credentials only to requests for the configured origins."""
        if r.url and origin(r.url) in self.origins:
            return self.inner(r)
        return r


def build_session(
    tls: TlsSettings, auth: AuthBase | None, origins: set[tuple[str, str, int | None]]
) -> requests.Session:
    """A session with the TLS options whose ``auth`` goes only to ``origins``.

    ``origins`` is kept by reference, so origins learnt later from the WSDL are honoured.
    """
    session = requests.Session()
    session.trust_env = False
    session.headers["User-Agent"] = "concord/0.1 (soap)"
    session.verify = tls.ca_bundle if (tls.verify and tls.ca_bundle) else tls.verify
    if tls.client_cert:
        session.cert = (tls.client_cert, tls.client_key) if tls.client_key else tls.client_cert
    if auth is not None:
        session.auth = OriginBoundAuth(auth, origins)
    return session


@dataclass(frozen=True, slots=True)
class SoapReply:
    """A SOAP answer: HTTP status and body."""

    status: int
    body: bytes


class SoapHttp:
    """Posts SOAP envelopes for one source with concord's retry and safety rules."""

    def __init__(self, source: str, session: requests.Session, settings: HttpSettings) -> None:
        self.source = source
        self.session = session
        self.settings = settings
        self.sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        """Close the session."""
        self.session.close()

    def post(self, url: str, body: bytes, headers: dict[str, str], operation: str) -> SoapReply:
        """Send one envelope; return a 200 or 500 reply, retry what can pass, raise the rest."""
        shown = safe_url(url)
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            status: int | None = None
            try:
                resp = self.session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=self.settings.timeout,
                    stream=True,
                    allow_redirects=False,
                )
            except requests.Timeout:
                problem = f"timed out after {self.settings.timeout:g}s"
            except requests.ConnectionError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            else:
                status = resp.status_code
                try:
                    raw = self._read(resp, shown, operation, attempt)
                except (requests.RequestException, ConnectionError) as exc:
                    problem = f"connection dropped while reading the body ({type(exc).__name__})"
                else:
                    if status in (200, 500):
                        return SoapReply(status, raw)
                    if status not in RETRIABLE_STATUS:
                        raise SourceError(
                            f"{operation}: {_describe(status, raw)}",
                            source=self.source,
                            url=shown,
                            status=status,
                            attempt=attempt,
                            retriable=False,
                        )
                    problem = _describe(status, raw)
                    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            if attempt >= self.settings.max_attempts:
                raise SourceError(
                    f"{operation}: {problem}; gave up after {attempt} attempts",
                    source=self.source,
                    url=shown,
                    status=status,
                    attempt=attempt,
                    retriable=True,
                )
            if retry_after is not None and retry_after > self.settings.retry_after_max:
                raise SourceError(
                    f"{operation}: {problem}; server asks to retry after {retry_after:g}s, "
                    "more than retry_after_max",
                    source=self.source,
                    url=shown,
                    status=status,
                    attempt=attempt,
                    retriable=True,
                )
            cap = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
            self.sleep(retry_after if retry_after is not None else random.uniform(0, cap))

    def _read(self, resp: requests.Response, shown: str, operation: str, attempt: int) -> bytes:
        limit = self.settings.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > limit:
                resp.close()
                raise SourceError(
                    f"{operation}: response exceeds max_response_bytes={limit}",
                    source=self.source,
                    url=shown,
                    status=resp.status_code,
                    attempt=attempt,
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _describe(status: int, raw: bytes) -> str:
    """A short description of an error answer, never the whole body."""
    if status in (401, 403):
        return "authentication refused: check the username and password reference"
    text = raw[:200].decode("utf-8", "replace").strip()
    if text.startswith("<"):
        return "server returned an HTML or XML error page"
    return redact(text) or "empty response"
