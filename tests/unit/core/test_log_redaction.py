"""Redaction sits under every log line: a registered secret, a bearer header, a basic-auth header
and a database URL with a password, logged through each logger the code uses (and third parties'
that see URLs and headers), in the message, its arguments and a traceback, through a handler
installed before or after redaction and through structlog (Airflow's task logger), never appear."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from concord.redact import install_log_redaction, register_secret

REPO = Path(__file__).resolve().parents[3]
REGISTERED = "reg-secret-5f1e2d9a"
BEARER = "Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"
BASIC = "Authorization: Basic dXNlcjpodW50ZXIy"
DB_URL = "postgresql://concord:db-pass-7731@db.internal:5432/concord"
LEAKS = ("reg-secret-5f1e2d9a", "eyJhbGciOi", "dXNlcjpodW50ZXIy", "db-pass-7731")

OUR_LOGGERS = ("concord.config", "concord.airflow", "concord.dag", "concord.pipeline")
OUR_LOGGERS += ("connectors.http",)
THIRD_PARTY = (
    "urllib3.connectionpool",
    "requests",
    "zeep.transports",
    "zeep.wsdl.wsdl",
    "sqlalchemy.engine.Engine",
    "alembic.runtime.migration",
    "airflow.task",
    "airflow.sdk.definitions.dag",
    "some.library.nobody.listed",
)


def test_every_logger_the_code_names_is_covered_here() -> None:
    named = set()
    for package in ("concord", "connectors", "dags"):
        for path in (REPO / package).rglob("*.py"):
            named |= set(re.findall(r'getLogger\("([^"]+)"\)', path.read_text()))
    assert named <= set(OUR_LOGGERS), named - set(OUR_LOGGERS)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Root output through a handler added after redaction was installed."""
    install_log_redaction()
    register_secret(REGISTERED)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def _log_everything(name: str) -> None:
    log = logging.getLogger(name)
    log.warning("marker %s calling with %s", name, REGISTERED)
    log.info("request headers {'Authorization': 'Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl'}")
    log.error("sent %s and %s", BEARER, BASIC)
    log.debug(f"connecting to {DB_URL}")
    try:
        raise RuntimeError(f"cannot connect to {DB_URL} with {REGISTERED} ({BASIC})")
    except RuntimeError:
        log.exception("marker-trace %s", name)


@pytest.mark.parametrize("name", OUR_LOGGERS + THIRD_PARTY)
def test_no_secret_reaches_the_output_of_any_logger(captured: io.StringIO, name: str) -> None:
    _log_everything(name)
    text = captured.getvalue()
    assert f"marker {name}" in text and f"marker-trace {name}" in text
    assert "RuntimeError: cannot connect to postgresql://concord:***@" in text
    for leak in LEAKS:
        assert leak not in text, (name, leak)


class _TracebackRenderer(logging.Formatter):
    """Renders the traceback itself from ``exc_info`` (as structlog's ProcessorFormatter does)."""

    def format(self, record: logging.LogRecord) -> str:
        import traceback

        trace = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        return f"{record.getMessage()}\n{trace}"


def test_a_handler_that_renders_tracebacks_itself_is_redacted_too() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(_TracebackRenderer())
    logger = logging.getLogger("concord.test.renderer")
    logger.addHandler(handler)
    try:
        install_log_redaction()  # wraps the formatter of every handler already installed
        register_secret(REGISTERED)
        try:
            raise ValueError(f"boom {REGISTERED} {DB_URL}")
        except ValueError:
            logger.error("marker-own-renderer", exc_info=True)
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "marker-own-renderer" in text and "ValueError: boom ***" in text
    for leak in LEAKS:
        assert leak not in text


@pytest.mark.parametrize("json_output", [False, True])
def test_structlog_output_is_redacted(json_output: bool) -> None:
    structlog = pytest.importorskip("structlog")
    saved = structlog.get_config()
    out = io.StringIO()
    renderer = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    try:
        task_log = structlog.get_logger(logger_name="task")
        task_log.info("warm-up")  # a logger cached before redaction is installed
        install_log_redaction()
        register_secret(REGISTERED)
        task_log.warning("marker-structlog", url=DB_URL, header=BEARER, token=REGISTERED)
        try:
            raise RuntimeError(f"task failed: {BASIC}")
        except RuntimeError:
            task_log.exception("marker-structlog-trace")
    finally:
        structlog.configure(**saved)
    text = out.getvalue()
    assert "marker-structlog" in text and "marker-structlog-trace" in text
    for leak in LEAKS:
        assert leak not in text, leak
