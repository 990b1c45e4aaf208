"""The one redaction function every log line and error message passes through.

Secrets reach it two ways: values registered when a secret reference is resolved
(``register_secret``), and well-known shapes (bearer tokens, basic-auth userinfo in URLs, query
parameters named like keys or tokens) caught by pattern even if nobody registered them.
"""

from __future__ import annotations

import logging
import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()

MASK = "***"

_PATTERNS = [
    (
        re.compile(r"(?i)(authorization\s*[:=]\s*)(bearer|basic|token)?\s*[^\s,;'\"]+"),
        r"\1\2 " + MASK,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + MASK),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@/\s]+@"), r"\1" + MASK + "@"),
    (
        re.compile(
            r"(?i)([?&;](?:api[_-]?key|apikey|access[_-]?token|token|secret|password|passwd|"
            r"client[_-]?secret|sig|signature|hapikey)=)[^&#\s]+"
        ),
        r"\1" + MASK,
    ),
    (
        re.compile(
            r"(?i)(['\"]?(?:password|client_secret|access_token|refresh_token|api_key)['\"]?"
            r"\s*[:=]\s*['\"]?)[^'\"\s,}&]+"
        ),
        r"\1" + MASK,
    ),
]


def register_secret(value: str | None) -> None:
    """Remember a resolved secret so any later message containing it is masked."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def forget_secrets() -> None:
    """Drop every registered secret (tests isolate themselves with this)."""
    with _lock:
        _secrets.clear()


def redact(text: str) -> str:
    """Return ``text`` with every known secret and secret-shaped token replaced by ``***``."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    """Passes every record's final message through ``redact`` (for third-party loggers too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's message in place; never drops a record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


LOGGERS_TO_REDACT = (
    "urllib3.connectionpool",
    "zeep.transports",
    "requests",
    "concord",
    "connectors",
)


def install_log_redaction() -> None:
    """Attach the redacting filter to the loggers that see URLs, headers or bodies (idempotent).

    Logger filters do not apply to records from child loggers, so each logger that writes such
    records is named here (urllib3 logs request lines, query included, at DEBUG).
    """
    for name in LOGGERS_TO_REDACT:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
