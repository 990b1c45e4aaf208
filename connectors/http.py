"""One HTTP client for every REST connector: timeouts, retries, rate limit, size cap, same origin.

Failures are grouped by what to do about them: connection errors, timeouts, 5xx, 429 and
truncated or unparseable bodies are retried with exponential backoff and full jitter
(``Retry-After`` wins when the server sends it); other 4xx stop at once. Credentials are attached
only to requests for the configured origin: a URL on another host (a foreign next-link) is refused
before anything is sent. A 401 with a cached OAuth2 token drops the token and tries once more
with a fresh one. Responses larger than ``max_response_bytes`` are refused. Errors name the
connector, the URL without secrets, the status and the attempt; they never include headers or
whole bodies. Only 2xx bodies are parsed as JSON; another status listed in ``ok_status`` (such as
416 ending a ``Range`` pagination) is returned raw.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import orjson
import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.auth import AuthBase

from concord.errors import ConcordError
from concord.redact import install_log_redaction, redact

install_log_redaction()

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpSettings(BaseModel):
    """Network behaviour of one connector (all have safe defaults)."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=30.0, gt=0, description="seconds to connect and per read")
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    retry_after_max: float = Field(default=120.0, ge=0)
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    requests_per_second: float | None = Field(default=None, gt=0)
    verify_tls: bool | str = True


class RateLimiter:
    """Token bucket shared by every thread using one connector (a per-source request limit)."""

    def __init__(
        self,
        per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_second = per_second
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, name: str, per_second: float | None) -> RateLimiter:
        """The process-wide limiter of connector ``name``.

        Every client of one source (one per entity, on any thread) draws from the same budget.
        """
        with _SHARED_LOCK:
            limiter = _SHARED.get(name)
            if limiter is None or limiter.per_second != per_second:
                limiter = _SHARED[name] = cls(per_second)
            return limiter

    def acquire(self) -> None:
        """Wait for this caller's slot: requests are spaced ``1/per_second`` apart overall."""
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            self.sleep(wait)


_SHARED: dict[str, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One answer: status, headers, raw body and the parsed JSON (None when not JSON)."""

    status: int
    headers: requests.structures.CaseInsensitiveDict[str]
    body: bytes
    url: str
    data: Any = None  # parsed JSON when asked for


def safe_url(url: str) -> str:
    """URL for messages: no userinfo, secret-looking query values masked."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, default ports filled in."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


ErrorFactory = Callable[..., ConcordError]


class HttpClient:
    """A requests session bound to one base URL, with concord's retry and safety rules."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        auth: Any,
        settings: HttpSettings,
        error: ErrorFactory,
        user_agent: str = "concord/0.1",
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/") + "/"
        self.settings = settings
        self.error = error
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"
        self.session.verify = settings.verify_tls
        self.auth: AuthBase | None = (
            auth.build(self.session, settings.timeout) if auth is not None else None
        )
        if self.auth is not None and hasattr(self.auth, "owner"):
            self.auth.owner = name  # errors from the token endpoint name the connector
        self.limiter = RateLimiter.shared(name, settings.requests_per_second)
        self.sleep: Callable[[float], None] = time.sleep

    def url(self, path_or_url: str) -> str:
        """The absolute URL of a path, or the URL itself when it is absolute."""
        return (
            urljoin(self.base_url, path_or_url.lstrip("/"))
            if "://" not in path_or_url
            else path_or_url
        )

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on the client's own origin (credentials may go there)."""
        return origin(url) == origin(self.base_url)

    def close(self) -> None:
        """Close the session."""
        self.session.close()

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        parse_json: bool = True,
        ok_status: frozenset[int] | None = None,
        body_hook: Callable[[bytes], bytes] | None = None,
    ) -> HttpResponse:
        """Send with retries; return the response (JSON parsed if asked) or raise ``error``.

        ``body_hook`` rewrites a 2xx body before it is parsed (a source's fast decoding step).
        """
        url = self.url(path_or_url)
        if not self.same_origin(url):
            raise self.error(
                f"refusing to send credentials to another host: {safe_url(url)} is not "
                f"on {safe_url(self.base_url)}",
                url=safe_url(url),
                retriable=False,
            )
        shown = safe_url(url + ("?" + urlencode(params, doseq=True) if params else ""))
        body = orjson.dumps(json) if json is not None else None
        send_headers = dict(headers or {})
        if body is not None:
            send_headers["Content-Type"] = "application/json"
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            self.limiter.acquire()
            problem: str
            retry_after: float | None = None
            status: int | None = None
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers=send_headers,
                    auth=self.auth,
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
                    raw = self._read(resp, shown, attempt)
                except (requests.RequestException, ConnectionError) as exc:
                    problem = f"connection dropped while reading the body ({type(exc).__name__})"
                else:
                    ok = ok_status or frozenset(range(200, 300))
                    if status == 401 and not reauthenticated and _invalidate(self.auth):
                        reauthenticated = True  # an OAuth2 token revoked early: fetch a new one
                        attempt -= 1
                        continue
                    if status in ok:
                        if body_hook is not None and 200 <= status < 300:
                            raw = body_hook(raw)
                        if not parse_json or not raw or not 200 <= status < 300:
                            return HttpResponse(status, resp.headers, raw, resp.url)
                        try:
                            data = orjson.loads(raw)
                        except orjson.JSONDecodeError as exc:
                            problem = f"response is not valid JSON ({exc.msg} at byte {exc.pos})"
                        else:
                            return HttpResponse(status, resp.headers, raw, resp.url, data)
                    elif status in RETRIABLE_STATUS:
                        problem = _describe(raw)
                        retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                    else:
                        raise self.error(
                            _describe(raw),
                            url=shown,
                            status=status,
                            attempt=attempt,
                            retriable=False,
                            body=_parse_or_none(raw),
                        )
            if attempt >= self.settings.max_attempts:
                raise self.error(
                    f"{problem}; gave up after {attempt} attempts",
                    url=shown,
                    status=status,
                    attempt=attempt,
                    retriable=True,
                )
            if retry_after is not None:
                if retry_after > self.settings.retry_after_max:
                    raise self.error(
                        f"{problem}; server asks to retry after {retry_after:g}s, "
                        f"more than retry_after_max",
                        url=shown,
                        status=status,
                        attempt=attempt,
                        retriable=True,
                    )
                delay = retry_after
            else:
                cap = min(
                    self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1)
                )
                delay = random.uniform(0, cap)  # full jitter
            self.sleep(delay)

    def _read(self, resp: requests.Response, shown: str, attempt: int) -> bytes:
        limit = self.settings.max_response_bytes
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            resp.close()
            raise self.error(
                f"response of {declared} bytes exceeds max_response_bytes={limit}",
                url=shown,
                status=resp.status_code,
                attempt=attempt,
                retriable=False,
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > limit:
                resp.close()
                raise self.error(
                    f"response exceeds max_response_bytes={limit}",
                    url=shown,
                    status=resp.status_code,
                    attempt=attempt,
                    retriable=False,
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _invalidate(auth: AuthBase | None) -> bool:
    """Drop a cached token so the next request fetches a new one; False if there is none."""
    invalidate = getattr(auth, "invalidate", None)
    if invalidate is None:
        return False
    invalidate()
    return True


def _parse_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _describe(raw: bytes) -> str:
    """A short, redacted description of an error body (never the whole body)."""
    data = _parse_or_none(raw)
    if isinstance(data, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            if isinstance(data.get(key), str):
                return redact(data[key][:300])
    text = raw[:200].decode("utf-8", "replace").strip()
    if text.startswith("<"):
        return "server returned an HTML error page"
    return redact(text) or "empty response"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
