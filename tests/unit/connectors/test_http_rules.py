"""The HTTP client's small rules on their own: rate limit spacing, Retry-After, safe URLs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from connectors.http import RateLimiter, retry_after_seconds, safe_url


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


def testretry_after_seconds_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    delay = retry_after_seconds(format_datetime(later, usegmt=True))
    assert delay is not None and 25 <= delay <= 31
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_safe_url_drops_userinfo_and_masks_secret_query_values() -> None:
    shown = safe_url("https://bob:pw@erp.example.com:8443/api?page=2&api_key=s3cr3t")
    assert "bob" not in shown and "pw@" not in shown and "s3cr3t" not in shown
    assert shown.startswith("https://erp.example.com:8443/api?page=2&api_key=")
