"""What Airflow should do with an error that stopped a task: fail it for good, or retry it.

Fatal errors (a broken config or mapping, credentials refused, a 4xx other than 408/429, a run
past its reject ratio: every ``ConcordError`` that is not ``retriable``) become
``AirflowFailException``, so Airflow fails the task at once with concord's message and spends
no retries on it. Retriable ones (timeouts, 5xx, 429, the sync lock busy) are raised as they
are and Airflow retries them with its backoff. Of other errors, only those of the network and
of the database connection are retriable; anything else is a bug, which a retry repeats.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from concord.errors import ConcordError
from concord.redact import redact

_RETRIABLE_OTHERS = ("OperationalError", "DisconnectionError", "InterfaceError", "TimeoutError")


def is_retriable(error: BaseException) -> bool:
    """Whether trying the task again can help."""
    if isinstance(error, ConcordError):
        return error.retriable
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    return type(error).__module__.startswith("sqlalchemy") and any(
        cls.__name__ in _RETRIABLE_OTHERS for cls in type(error).__mro__
    )


def reason(error: BaseException) -> str:
    """The error's message for the task log and the failure callback, redacted."""
    if isinstance(error, ConcordError):
        return error.message
    return redact(f"{type(error).__name__}: {error}")


@contextmanager
def airflow_failures() -> Iterator[None]:
    """Turn a fatal error of the body into ``AirflowFailException``; retriable ones pass."""
    try:
        yield
    except Exception as exc:
        fail = None if is_retriable(exc) else _fail_exception()
        if fail is None:
            raise
        raise fail(reason(exc)) from exc


def _fail_exception() -> type[Exception] | None:
    """Airflow's ``AirflowFailException``, or None outside Airflow (the error passes as it is)."""
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:
        return None
    return AirflowFailException
