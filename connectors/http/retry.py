"""The one retry policy: which answers to retry, and how long to wait before the next attempt.

Grouped by what to do: an answer the caller asked for (2xx by default; a SOAP source also takes
500, whose body is the SOAP Fault) is handed back; no answer at all (connection refused or
dropped, a timeout, a body cut short or unparseable) and 408, 425, 429, 500, 502, 503, 504 are
retried with exponential backoff and full jitter, ``Retry-After`` winning when the server sends
one; any other status is fatal, retrying gives the same answer. Retrying stops after
``max_attempts`` or when the server asks to wait longer than ``retry_after_max``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import Enum

from connectors.http.settings import HttpSettings

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
SUCCESS = frozenset(range(200, 300))


class Verdict(Enum):
    """What to do with the outcome of one attempt."""

    ANSWER = "answer"
    """Hand the response to the caller."""
    RETRY = "retry"
    """Try again after ``RetryPolicy.delay``."""
    FATAL = "fatal"
    """Stop: trying again gives the same answer."""
    GIVE_UP = "give_up"
    """Retriable, but the attempts are spent or the server asks to wait too long."""


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry and how long to wait, from a connector's ``http`` settings."""

    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    answers: frozenset[int] = SUCCESS
    jitter: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    @classmethod
    def from_settings(
        cls, settings: HttpSettings, answers: frozenset[int] = SUCCESS
    ) -> RetryPolicy:
        """The policy of one connector; ``answers`` are the statuses handed to the caller."""
        return cls(
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            retry_after_max=settings.retry_after_max,
            answers=answers,
        )

    def verdict(
        self,
        status: int | None,
        attempt: int,
        retry_after: float | None = None,
        answers: frozenset[int] | None = None,
    ) -> Verdict:
        """What to do after attempt number ``attempt`` (from 1) ended with ``status``.

        ``status`` is None when there was no usable answer (connection, timeout, cut body);
        ``answers`` overrides the policy's answer statuses for one call.
        """
        if status is not None and status in (self.answers if answers is None else answers):
            return Verdict.ANSWER
        if status is not None and status not in RETRIABLE_STATUS:
            return Verdict.FATAL
        if attempt >= self.max_attempts:
            return Verdict.GIVE_UP
        if retry_after is not None and retry_after > self.retry_after_max:
            return Verdict.GIVE_UP
        return Verdict.RETRY

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt``: ``Retry-After``, else full jitter."""
        if retry_after is not None:
            return retry_after
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return self.jitter(0, cap)


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
