"""The one rate limiter: requests of one connector spaced ``1/requests_per_second`` apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token bucket shared by every thread using one connector (a per-connector request limit)."""

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

        Every client of one connector (one per entity, on any thread) draws from the same budget.
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
