"""The one redaction function every log line and error message passes through.

Secrets reach it two ways: values registered when a secret reference is resolved
(``register_secret``), and well-known shapes (bearer and basic credentials, auth headers,
passwords in URLs such as a database URL, query parameters named like keys or tokens) caught by
pattern even if nobody registered them. ``install_log_redaction`` puts it under every log line
of the process (docs/security.md says how).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_secrets: set[str] = set()

MASK = "***"

_PATTERNS = [
    (
        re.compile(
            r"(?i)(?<![\w.-])(['\"]?(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
            r"(bearer|basic|token|digest)?\s*[^\s,;'\"]+"
        ),
        r"\1\2 " + MASK,
    ),
    (
        re.compile(
            r"(?i)(?<![\w.-])(['\"]?(?:x-api-key|api-key|x-auth-token|cookie|set-cookie)['\"]?"
            r"\s*[:=]\s*['\"]?)[^\s,;'\"]+"
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + MASK),
    (
        re.compile(r"(?i)\b(basic)\s+(?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{6,}={0,2}"),
        r"\1 " + MASK,
    ),
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


def registered_secrets() -> frozenset[str]:
    """Every secret registered so far (what a test scans the store and the logs for)."""
    with _lock:
        return frozenset(_secrets)


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret (a checkpoint must never)."""
    with _lock:
        return any(secret in text for secret in _secrets)


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


class _RedactingRecordFactory:
    """Wraps the log record factory: every record's message, traceback and stack are redacted.

    Records are built by the factory whatever logger they come from (ours, urllib3's, zeep's,
    Airflow's stdlib loggers), so nothing reaches a handler unredacted. The traceback is
    formatted here, once, so handlers using the standard ``Formatter`` print the redacted text.
    """

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it when formatting
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter: whatever it renders (tracebacks too) is redacted."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text, redacted."""
        return redact(self.inner.format(record))


class _RedactingRenderer:
    """Wraps structlog's final renderer (Airflow's task logger): its output is redacted."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner

    def __call__(self, logger: Any, method: str, event: Any) -> Any:
        out = self.inner(logger, method, event)
        if isinstance(out, str):
            return redact(out)
        if isinstance(out, bytes):
            return redact(out.decode("utf-8", "replace")).encode()
        return out


_FORMATTER = logging.Formatter()
_install_lock = threading.Lock()


def _wrap_handlers() -> None:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if not isinstance(handler.formatter, RedactingFormatter):
                handler.setFormatter(RedactingFormatter(handler.formatter or logging.Formatter()))


def _wrap_structlog() -> None:
    structlog = sys.modules.get("structlog")
    if structlog is None:  # nobody logs through structlog (the CLI)
        return
    processors = structlog.get_config()["processors"]
    if isinstance(processors, list) and processors:
        if not isinstance(processors[-1], _RedactingRenderer):
            processors[-1] = _RedactingRenderer(processors[-1])  # in place: cached loggers too


def install_log_redaction() -> None:
    """Redact every log line of the process, whichever logger or handler writes it (idempotent).

    Three places, so no path is left: the log record factory (every stdlib record, from any
    logger, before any handler sees it), the formatter of every handler already installed
    (what a structlog ``ProcessorFormatter`` renders, tracebacks included), and structlog's
    final renderer (Airflow's task logger). Call it again after something reconfigures logging
    (each Airflow task does, as it starts).
    """
    with _install_lock:
        factory = logging.getLogRecordFactory()
        if not isinstance(factory, _RedactingRecordFactory):
            logging.setLogRecordFactory(_RedactingRecordFactory(factory))
        _wrap_handlers()
        _wrap_structlog()
