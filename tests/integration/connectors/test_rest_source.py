"""The declarative REST source against the sandbox ERP over loopback: paging, windows, faults."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, SourceConfig
from concord.contracts import Window
from concord.errors import SourceError
from connectors.erp.rest import RestSource
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from sandbox.server import Fault


@pytest.fixture
def erp() -> Iterator[RestErpServer]:
    with RestErpServer(ErpDataset.generate(seed=7, customers=30)) as server:
        yield server


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
    resume: str | None = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in source.extract(entity, window or Window(None, None), resume):
        out.extend(page.records)
    return out


def test_cursor_paging_returns_every_record_once(erp: RestErpServer) -> None:
    records = pull(make_source(erp.url))
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == erp.dataset.count("orders")


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
    assert len(pull(make_source(erp.url))) == erp.dataset.count("orders")


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

    source.client.request = fake_first_page  # type: ignore[method-assign]
    with pytest.raises(SourceError, match="refusing to send credentials to another host"):
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
