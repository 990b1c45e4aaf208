"""The one HTTP client: every REST call, SOAP call, WSDL download, CRM call and token request.

A ``requests`` session bound to a connector's configured origins, with the kit's rules applied
in one place: the origin guard before anything is sent, the rate limiter before each attempt,
every call with a timeout and no redirects followed, the size guard while reading, the retry
policy deciding what happens next. A 401 with a cached OAuth token drops the token and tries once
more with a fresh one. Only 2xx bodies are parsed as JSON; another status the caller lists in
``ok_status`` (416 ending a ``Range`` pagination, 500 carrying a SOAP Fault) is returned raw.
Errors are the connector's side's (``SourceError`` or ``PushError``) and name the URL without
secrets, the status and the attempt; they never include headers or whole bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin

import orjson
import requests
from requests.auth import AuthBase

from concord.errors import PushError, SourceError
from concord.redact import install_log_redaction, redact
from connectors.http.guards import OriginGuard, ResponseTooLarge, SizeGuard, safe_url
from connectors.http.rate import RateLimiter
from connectors.http.retry import SUCCESS, RetryPolicy, Verdict, retry_after_seconds
from connectors.http.settings import HttpSettings
from connectors.http.side import Side

install_log_redaction()
log = logging.getLogger("connectors.http")

AUTH_REFUSED = frozenset({401, 403})


class AuthStyle(Protocol):
    """An auth section of a connector's config: builds what adds credentials to a request."""

    def build(self, side: Side, settings: HttpSettings) -> AuthBase | None:
        """The credentials for ``side``'s requests (secrets resolved now), or None."""
        ...


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One answer: status, headers, raw body and the parsed JSON (None when not JSON)."""

    status: int
    headers: requests.structures.CaseInsensitiveDict[str]
    body: bytes
    url: str
    data: Any = None  # parsed JSON when asked for


class HttpClient:
    """A session bound to one connector's origins, with the kit's retry and safety rules."""

    def __init__(
        self,
        side: Side,
        base_url: str | None,
        *,
        auth: AuthStyle | None,
        settings: HttpSettings,
        also_allowed: Iterable[str] = (),
        accept: str = "application/json",
        limiter: RateLimiter | None = None,
    ) -> None:
        self.side = side
        self.base_url = base_url.rstrip("/") + "/" if base_url else None
        self.settings = settings
        self.policy = RetryPolicy.from_settings(settings)
        self.guard = OriginGuard([*([self.base_url] if self.base_url else []), *also_allowed])
        self.size = SizeGuard(settings.max_response_bytes)
        self.limiter = limiter or RateLimiter.shared(
            f"{side.kind}:{side.name}", settings.requests_per_second
        )
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or .netrc credentials from the environment
        self.session.headers["User-Agent"] = "concord/0.1"
        self.session.headers["Accept"] = accept
        settings.tls.apply(self.session)
        if not settings.tls.verify:
            log.warning("%s '%s': TLS verification is switched off", side.kind, side.name)
        self.auth: AuthBase | None = auth.build(side, settings) if auth is not None else None
        self.sleep: Callable[[float], None] = time.sleep

    def url(self, path_or_url: str) -> str:
        """The absolute URL of a path (against the base URL), or the URL itself."""
        if "://" in path_or_url or self.base_url is None:
            return path_or_url
        return urljoin(self.base_url, path_or_url.lstrip("/"))

    def close(self) -> None:
        """Close the session."""
        self.session.close()

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        parse_json: bool = True,
        ok_status: frozenset[int] | None = None,
        body_hook: Callable[[bytes], bytes] | None = None,
        what: str | None = None,
    ) -> HttpResponse:
        """Send with retries; return the answer (JSON parsed if asked) or raise the side's error.

        ``json``, ``content`` (raw bytes) and ``form`` (url-encoded) are the body styles;
        ``body_hook`` rewrites a 2xx body before it is parsed (a source's fast decoding step);
        ``what`` starts every error message (``operation ReadMultiple for 'customers'``).
        """
        url = self.url(path_or_url)
        prefix = f"{what}: " if what else ""
        refusal = self.guard.refusal(url)
        if refusal is not None:
            raise self.side.error(prefix + refusal, url=safe_url(url))
        shown = safe_url(url + ("?" + urlencode(params, doseq=True) if params else ""))
        body: bytes | Mapping[str, str] | None = content if content is not None else form
        send_headers = dict(headers or {})
        if json is not None:
            body = orjson.dumps(json)
            send_headers["Content-Type"] = "application/json"
        answers = ok_status if ok_status is not None else SUCCESS
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            self.limiter.acquire()
            problem = ""
            raw = b""
            status: int | None = None
            answered: int | None = None  # the status of an answer read whole, not handed back
            retry_after: float | None = None
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
                    raw = self.size.read(resp)
                except ResponseTooLarge as exc:
                    raise self.side.error(
                        prefix + str(exc), url=shown, status=status, attempt=attempt
                    ) from None
                except (requests.RequestException, ConnectionError) as exc:
                    problem = f"connection dropped while reading the body ({type(exc).__name__})"
                else:
                    if status == 401 and not reauthenticated and _invalidate(self.auth):
                        reauthenticated = True  # an OAuth token revoked early: fetch a new one
                        attempt -= 1
                        continue
                    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                    if self.policy.verdict(status, attempt, retry_after, answers) is Verdict.ANSWER:
                        if body_hook is not None and 200 <= status < 300:
                            raw = body_hook(raw)
                        if not parse_json or not raw or not 200 <= status < 300:
                            return HttpResponse(status, resp.headers, raw, resp.url)
                        try:
                            data = orjson.loads(raw)
                        except orjson.JSONDecodeError as exc:  # cut or garbled: try again
                            problem = f"response is not valid JSON ({exc.msg} at byte {exc.pos})"
                        else:
                            return HttpResponse(status, resp.headers, raw, resp.url, data)
                    else:
                        answered = status
                        problem = _describe(raw)
            verdict = self.policy.verdict(answered, attempt, retry_after, answers)
            if verdict is Verdict.FATAL:
                refused = answered in AUTH_REFUSED
                raise self.side.error(
                    prefix + (f"authentication refused: {problem}" if refused else problem),
                    url=shown,
                    status=status,
                    attempt=attempt,
                    auth=refused,
                    body=_parse_or_none(raw),
                )
            if verdict is Verdict.GIVE_UP:
                raise self._gave_up(prefix + problem, shown, status, attempt, retry_after)
            self.sleep(self.policy.delay(attempt, retry_after))

    def _gave_up(
        self, problem: str, shown: str, status: int | None, attempt: int, retry_after: float | None
    ) -> SourceError | PushError:
        if retry_after is not None and retry_after > self.policy.retry_after_max:
            reason = f"server asks to retry after {retry_after:g}s, more than retry_after_max"
        else:
            reason = f"gave up after {attempt} attempts"
        return self.side.error(
            f"{problem}; {reason}", url=shown, status=status, attempt=attempt, retriable=True
        )


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
        return "server returned an HTML or XML error page"
    return redact(text) or "empty response"
