"""The declarative REST source against the sandbox ERP over loopback: paging, windows, faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, SourceConfig
from concord.contracts import Checkpoint, Source, Window
from concord.errors import SourceError
from concord.testing import SourceContract
from connectors.erp.rest import RestSource
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from sandbox.server import Fault


@pytest.fixture
def erp() -> Iterator[RestErpServer]:
    with RestErpServer(ErpDataset.generate(seed=7, customers=30)) as server:
        yield server


def order_count(erp: RestErpServer) -> int:
    dataset = erp.dataset
    assert isinstance(dataset, ErpDataset)
    return dataset.count("orders")


def make_source(url: str, **overrides: Any) -> RestSource:
    settings: dict[str, Any] = {
        "base_url": url,
        "auth": {"type": "bearer", "token": {"env": "SANDBOX_ERP_TOKEN"}},
        "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
        "page_size": 7,
        "incremental": {"start_param": "updated_since", "end_param": "updated_before"},
        "http": {"backoff_base": 0.01, "max_attempts": 6},
        **overrides,
    }
    config = SourceConfig.model_validate(
        {
            "type": "rest",
            **settings,
            "entities": {
                "orders": EntityConfig(mapping=Path("x.yaml"), path="/api/v1/orders"),
                "customers": EntityConfig(mapping=Path("x.yaml"), path="/api/v1/customers"),
            },
        }
    )
    config.name = "erp"
    return RestSource.from_config(config)


def pull(
    source: RestSource,
    entity: str = "orders",
    window: Window | None = None,
    resume: Checkpoint | None = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in source.extract(entity, window or Window(None, None), resume):
        out.extend(page.records)
    return out


def test_cursor_paging_returns_every_record_once(erp: RestErpServer) -> None:
    records = pull(make_source(erp.url))
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == order_count(erp)


def test_window_start_limits_to_changed_records(erp: RestErpServer) -> None:
    source = make_source(erp.url)
    everything = pull(source)
    cutoff = sorted(r["updated_at"] for r in everything)[len(everything) // 2]
    since = datetime.fromisoformat(cutoff.replace("Z", "+00:00"))
    recent = pull(source, window=Window(since, None))
    assert recent
    assert all(r["updated_at"] >= cutoff for r in recent)
    assert len(recent) < len(everything)


def test_checkpoint_resumes_after_the_last_page(erp: RestErpServer) -> None:
    source = make_source(erp.url)
    pages = list(source.extract("orders", Window(None, None), None))
    resumed = pull(source, resume=pages[1].checkpoint)
    expected = [r["id"] for p in pages[2:] for r in p.records]
    assert [r["id"] for r in resumed] == expected


def test_server_errors_are_retried_until_success(erp: RestErpServer) -> None:
    erp.faults.append(Fault(status=500, times=2))
    erp.faults.append(Fault(kind="reset", times=1))
    erp.faults.append(Fault(kind="truncate", times=1))
    assert len(pull(make_source(erp.url))) == order_count(erp)


def test_retry_after_is_honoured(erp: RestErpServer) -> None:
    erp.faults.append(Fault(status=429, retry_after=1, times=1))
    source = make_source(erp.url)
    slept: list[float] = []
    source.client.sleep = slept.append
    pull(source)
    assert slept == [1.0]


def test_persistent_failure_names_source_url_status_and_attempt(erp: RestErpServer) -> None:
    erp.faults.append(Fault(status=503, times=10))
    source = make_source(erp.url)
    source.client.sleep = lambda _s: None
    with pytest.raises(SourceError) as info:
        pull(source)
    message = str(info.value)
    assert "source 'erp'" in message and "/api/v1/orders" in message
    assert "HTTP 503" in message and "attempt 6" in message
    assert "sandbox-erp-token" not in message


def test_unauthorised_is_not_retried(erp: RestErpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_ERP_TOKEN", "wrong-token-value")
    source = make_source(erp.url)
    with pytest.raises(SourceError, match=r"HTTP 401.*attempt 1"):
        pull(source)
    assert len(erp.requests) == 1


def test_next_link_to_another_host_gets_no_credentials(erp: RestErpServer) -> None:
    source = make_source(erp.url, paginator={"type": "next_link", "next_path": "next"})
    source.client.sleep = lambda _s: None
    foreign = "http://127.0.0.2:9/steal"
    original = source.client.request

    def fake_first_page(method: str, url: str, **kw: Any) -> Any:
        resp = original(method, url, **kw)
        object.__setattr__(resp, "data", {**resp.data, "next": foreign})
        return resp

    source.client.request = fake_first_page  # type: ignore[method-assign,assignment]
    with pytest.raises(SourceError, match="refusing to send to another host"):
        pull(source)
    assert all(not path.startswith("/steal") for _m, path in erp.requests)


def test_records_path_that_is_not_a_list_is_a_clear_error(erp: RestErpServer) -> None:
    source = make_source(erp.url, records_path="next_cursor")
    with pytest.raises(SourceError, match="expected a list of records at 'next_cursor'"):
        pull(source)


def test_datetime_window_is_sent_as_iso_utc(erp: RestErpServer) -> None:
    source = make_source(erp.url)
    pull(source, window=Window(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), None))
    assert any("updated_since=2026-01-02T03%3A04%3A05.000000Z" in p for _m, p in erp.requests)


def test_a_dropped_connection_after_the_server_answered_loses_no_records(
    erp: RestErpServer,
) -> None:
    erp.faults.append(Fault(kind="reset", handled=True, times=2))
    source = make_source(erp.url)
    source.client.sleep = lambda _s: None
    ids = [r["id"] for r in pull(source)]
    assert len(ids) == len(set(ids)) == order_count(erp)


def test_truncated_json_every_time_gives_up_naming_the_problem(erp: RestErpServer) -> None:
    erp.faults.append(Fault(kind="truncate", times=10))
    source = make_source(erp.url, http={"max_attempts": 3})
    source.client.sleep = lambda _s: None
    with pytest.raises(SourceError, match=r"attempt 3: .*gave up after 3 attempts") as info:
        pull(source)
    assert "connection dropped" in str(info.value) or "not valid JSON" in str(info.value)


def test_backoff_grows_exponentially_with_jitter(erp: RestErpServer) -> None:
    erp.faults.append(Fault(status=502, times=4))
    source = make_source(erp.url, http={"backoff_base": 1.0, "backoff_max": 5.0})
    slept: list[float] = []
    source.client.sleep = slept.append
    pull(source)
    assert len(slept) == 4
    for attempt, delay in enumerate(slept, start=1):
        assert 0 <= delay <= min(5.0, 2 ** (attempt - 1))


def test_retry_after_beyond_the_limit_fails_at_once(erp: RestErpServer) -> None:
    erp.faults.append(Fault(status=429, retry_after=3600, times=1))
    source = make_source(erp.url, http={"retry_after_max": 60})
    with pytest.raises(SourceError, match=r"HTTP 429.*retry after 3600s"):
        pull(source)


def test_a_response_over_the_size_limit_is_refused_not_retried(erp: RestErpServer) -> None:
    source = make_source(erp.url, page_size=200, http={"max_response_bytes": 2048})
    with pytest.raises(SourceError, match=r"exceeds max_response_bytes=2048.*|.*max_response"):
        pull(source)
    assert erp.request_count("/api/v1/orders") == 1


def test_a_silent_server_times_out_with_a_clear_error() -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # never answers
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        source = make_source(url, http={"timeout": 0.2, "max_attempts": 2})
        source.client.sleep = lambda _s: None
        with pytest.raises(SourceError, match=r"attempt 2: timed out after 0.2s; gave up"):
            pull(source)
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_paginator_asking_for_the_same_page_twice_is_stopped(erp: RestErpServer) -> None:
    source = make_source(erp.url)
    original = source.client.request

    first_token: list[str] = []

    def same_cursor(method: str, url: str, **kw: Any) -> Any:
        resp = original(method, url, **kw)
        first_token.append(first_token[0] if first_token else resp.data["next_cursor"])
        object.__setattr__(resp, "data", {**resp.data, "next_cursor": first_token[0]})
        return resp

    source.client.request = same_cursor  # type: ignore[method-assign,assignment]
    with pytest.raises(SourceError, match="same page twice"):
        pull(source)


def test_max_pages_guards_against_a_runaway_paginator(erp: RestErpServer) -> None:
    source = make_source(erp.url, max_pages=2)
    with pytest.raises(SourceError, match="more than max_pages=2"):
        pull(source)


class TestRestSourceContract(SourceContract):
    """The REST source passes the contract every source passes (``concord.testing``)."""

    entity = "customers"

    @pytest.fixture
    def source(self, erp: RestErpServer) -> Iterator[Source]:  # type: ignore[override]
        built = make_source(erp.url)
        yield built
        built.close()

    @pytest.fixture
    def requests_made(self, erp: RestErpServer) -> Callable[[], int]:  # type: ignore[override]
        return lambda: erp.request_count("/api/v1/customers")
