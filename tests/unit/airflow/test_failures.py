"""Which errors Airflow retries: fatal ones become AirflowFailException with concord's message,
retriable ones pass as they are."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from concord.airflow.failures import airflow_failures, is_retriable, reason
from concord.errors import (
    ConfigError,
    LockBusy,
    MappingError,
    PushError,
    RunFailed,
    SourceError,
)


@pytest.mark.parametrize(
    "error",
    [
        SourceError("timed out; gave up after 5 attempts", source="erp", retriable=True),
        PushError("HTTP 503; gave up", target="crm", status=503, retriable=True),
        LockBusy("another sync holds the 'sync' lock", run_id="cli-1"),
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        ConnectionResetError("reset"),
        TimeoutError("slow"),
    ],
)
def test_retriable_errors_are_left_to_airflows_retries(error: Exception) -> None:
    assert is_retriable(error)
    with pytest.raises(type(error)), airflow_failures():
        raise error


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("bad key", key="sources.erp.type"),
        MappingError("unknown function", file="m.yaml", line=3),
        PushError("authentication refused", target="crm", status=401, auth=True),
        SourceError("HTTP 404", source="erp", status=404),
        RunFailed("12 of 15 records rejected"),
        ProgrammingError("SELECT x", {}, Exception("no such column")),
        KeyError("a bug"),
    ],
)
def test_fatal_errors_fail_the_task_without_retries(error: Exception) -> None:
    exceptions = pytest.importorskip("airflow.sdk.exceptions")
    assert not is_retriable(error)
    with pytest.raises(exceptions.AirflowFailException) as failed, airflow_failures():
        raise error
    assert str(failed.value) == reason(error)
    assert failed.value.__cause__ is error


def test_the_reason_of_an_unexpected_error_is_redacted() -> None:
    text = reason(RuntimeError("cannot reach postgresql://u:pg-pw-1234@db/x"))
    assert text.startswith("RuntimeError: ") and "pg-pw-1234" not in text
