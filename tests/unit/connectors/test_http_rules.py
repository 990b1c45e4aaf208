"""The HTTP kit's small rules on their own: the retry policy's verdict and delay, rate limit
spacing, Retry-After, safe URLs, the origin and size guards, TLS settings, the token cache."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from concord.errors import PushError, SourceError
from connectors.http import (
    HttpSettings,
    OriginGuard,
    RateLimiter,
    RetryPolicy,
    Side,
    SizeGuard,
    TlsSettings,
    Token,
    TokenCache,
    Verdict,
    retry_after_seconds,
    safe_url,
)
from connectors.http.guards import ResponseTooLarge


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(round(seconds, 6))


# -- retry policy ---------------------------------------------------------------------------------


def test_verdict_answers_retries_and_stops_by_status() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.verdict(200, 1) is Verdict.ANSWER
    assert policy.verdict(204, 1) is Verdict.ANSWER
    for status in (408, 425, 429, 500, 502, 503, 504, None):
        assert policy.verdict(status, 1) is Verdict.RETRY, status
    for status in (400, 401, 403, 404, 409, 422):
        assert policy.verdict(status, 1) is Verdict.FATAL, status


def test_verdict_gives_up_when_attempts_are_spent_or_the_wait_is_too_long() -> None:
    policy = RetryPolicy(max_attempts=3, retry_after_max=60)
    assert policy.verdict(503, 2) is Verdict.RETRY
    assert policy.verdict(503, 3) is Verdict.GIVE_UP
    assert policy.verdict(None, 3) is Verdict.GIVE_UP
    assert policy.verdict(429, 1, retry_after=61) is Verdict.GIVE_UP
    assert policy.verdict(429, 1, retry_after=60) is Verdict.RETRY


def test_verdict_hands_back_the_answers_a_caller_asks_for() -> None:
    soap = RetryPolicy(answers=frozenset({200, 500}))
    assert soap.verdict(500, 1) is Verdict.ANSWER  # a SOAP Fault is an answer, not retried
    assert RetryPolicy().verdict(416, 1, answers=frozenset({200, 416})) is Verdict.ANSWER


def test_delay_is_full_jitter_under_a_doubling_cap_and_retry_after_wins() -> None:
    caps: list[float] = []
    policy = RetryPolicy(
        backoff_base=0.5, backoff_max=3.0, jitter=lambda lo, hi: caps.append(hi) or hi
    )
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert caps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert 0 <= RetryPolicy(backoff_base=1.0).delay(3) <= 4.0


def test_policy_reads_the_http_settings() -> None:
    policy = RetryPolicy.from_settings(HttpSettings(max_attempts=2, retry_after_max=5))
    assert (policy.max_attempts, policy.retry_after_max) == (2, 5)


def testretry_after_seconds_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    delay = retry_after_seconds(format_datetime(later, usegmt=True))
    assert delay is not None and 25 <= delay <= 31
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


# -- rate limiter ---------------------------------------------------------------------------------


def test_rate_limit_spaces_requests_across_threads() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # five callers at the same instant: the first goes, the others wait 0.1 s apart
    assert sorted(clock.slept) == [0.1, 0.2, 0.3, 0.4]


def test_no_rate_limit_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        limiter.acquire()
    assert clock.slept == []


def test_one_source_shares_one_limiter() -> None:
    a = RateLimiter.shared("erp-shared-test", 5)
    assert RateLimiter.shared("erp-shared-test", 5) is a
    assert RateLimiter.shared("other-source-test", 5) is not a
    assert RateLimiter.shared("erp-shared-test", 7) is not a  # settings changed: new budget


# -- guards, URLs, TLS, sides ---------------------------------------------------------------------


def test_safe_url_drops_userinfo_and_masks_secret_query_values() -> None:
    shown = safe_url("https://bob:pw@erp.example.com:8443/api?page=2&api_key=s3cr3t")
    assert "bob" not in shown and "pw@" not in shown and "s3cr3t" not in shown
    assert shown.startswith("https://erp.example.com:8443/api?page=2&api_key=")


def test_origin_guard_allows_only_configured_origins() -> None:
    guard = OriginGuard(["http://127.0.0.1:8703/WS/", "https://erp.example.com"])
    assert guard.refusal("http://127.0.0.1:8703/WS/Page/Customer") is None
    assert guard.refusal("https://erp.example.com:443/x") is None  # default port filled in
    for foreign in ("http://127.0.0.1:9999/x", "https://127.0.0.1:8703/x", "http://evil.test/"):
        refusal = guard.refusal(foreign)
        assert refusal is not None and "refusing to send to another host" in refusal
    assert OriginGuard([]).refusal("http://127.0.0.1:1/") is not None


class _Body(requests.Response):
    def __init__(self, size: int, declared: str | None) -> None:
        super().__init__()
        self.status_code = 200
        self.raw = io.BytesIO(b"x" * size)
        if declared is not None:
            self.headers["Content-Length"] = declared


def test_size_guard_refuses_by_declared_length_and_while_reading() -> None:
    guard = SizeGuard(1024)
    assert guard.read(_Body(1024, "1024")) == b"x" * 1024
    with pytest.raises(ResponseTooLarge, match="of 5000 bytes exceeds"):
        guard.read(_Body(10, "5000"))
    with pytest.raises(ResponseTooLarge, match="exceeds max_response_bytes=1024"):
        guard.read(_Body(2000, None))


def test_tls_settings_reach_the_session() -> None:
    def session(tls: TlsSettings) -> requests.Session:
        s = requests.Session()
        tls.apply(s)
        return s

    assert session(TlsSettings()).verify is True
    assert session(TlsSettings(ca_bundle="/etc/ca.pem")).verify == "/etc/ca.pem"
    assert session(TlsSettings(verify=False)).verify is False
    assert session(TlsSettings(client_cert="c.pem", client_key="k.pem")).cert == ("c.pem", "k.pem")


def test_legacy_verify_tls_is_read_as_http_tls() -> None:
    assert HttpSettings.model_validate({"verify_tls": False}).tls.verify is False
    assert HttpSettings.model_validate({"verify_tls": "/ca.pem"}).tls.ca_bundle == "/ca.pem"


def test_errors_name_the_side() -> None:
    source = Side.source("erp").error("boom", status=503, retriable=True)
    target = Side.target("crm").error("boom", status=401, auth=True)
    assert isinstance(source, SourceError) and str(source).startswith("source 'erp'")
    assert isinstance(target, PushError) and str(target).startswith("target 'crm'")
    assert source.retriable and target.auth and not target.retriable


# -- token cache ----------------------------------------------------------------------------------


def test_token_is_fetched_once_and_again_after_a_refusal() -> None:
    fetched: list[int] = []

    def fetch() -> Token:
        fetched.append(1)
        return Token(f"tok-{len(fetched)}", 3600)

    cache = TokenCache(fetch)
    assert cache.token() == "tok-1" and cache.token() == "tok-1"
    cache.invalidate()
    assert cache.token() == "tok-2" and cache.fetches == 2


def test_token_about_to_expire_is_renewed_on_the_injected_clock() -> None:
    n = iter(range(10))
    clock = [1000.0]
    cache = TokenCache(
        lambda: Token(f"tok-{next(n)}", 120), refresh_margin=60, clock=lambda: clock[0]
    )
    assert cache.token() == "tok-0"
    clock[0] += 59
    assert cache.token() == "tok-0"
    clock[0] += 2  # inside the margin before expiry
    assert cache.token() == "tok-1"


def test_a_token_without_a_lifetime_lives_an_hour_and_short_ones_half_their_life() -> None:
    clock = [0.0]
    cache = TokenCache(lambda: Token("t", None), refresh_margin=60, clock=lambda: clock[0])
    cache.token()
    clock[0] = 3539.0
    cache.token()
    assert cache.fetches == 1
    short = TokenCache(lambda: Token("s", 10), refresh_margin=60, clock=lambda: clock[0])
    short.token()
    clock[0] += 5.5  # a 10 s token is renewed after half its life, not at once
    short.token()
    assert short.fetches == 2
