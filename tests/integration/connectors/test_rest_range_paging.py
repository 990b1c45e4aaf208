"""``Range: records=a-b`` paging against a loopback server that answers like Tryton's REST API:
``Content-Range`` with an unknown total (``*``) and 416 with an HTML body past the last record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, SourceConfig
from concord.contracts import Checkpoint, Window
from connectors.erp.rest import RestSource
from sandbox.server import Fault, LoopbackServer, Request, Response


class RangeServer(LoopbackServer):
    """Serves ``count`` records at /records, paged only by the Range header."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ranges: list[str] = []
        super().__init__(token="range-token")

    def handle(self, request: Request) -> Response:
        header = request.headers.get("range", "")
        self.ranges.append(header)
        start, end = (int(x) for x in header.split("=", 1)[1].split("-", 1))
        rows = [{"id": i, "n": f"r{i}"} for i in range(start, min(end, self.count))]
        if not rows and start:
            return Response(416, None, {"Content-Type": "text/html"})
        return Response(200, rows, {"Content-Range": f"records {start}-{start + len(rows)}/*"})


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RangeServer]:
    monkeypatch.setenv("RANGE_TOKEN", "range-token")
    with RangeServer(count=30) as srv:
        yield srv


def make_source(url: str) -> RestSource:
    config = SourceConfig.model_validate(
        {
            "type": "rest",
            "base_url": url,
            "auth": {"type": "bearer", "token": {"env": "RANGE_TOKEN"}},
            "paginator": {"type": "range"},
            "records_path": "",
            "page_size": 10,
            "http": {"backoff_base": 0.01},
            "entities": {"rows": EntityConfig(mapping=Path("x.yaml"), path="/records")},
        }
    )
    config.name = "ranged"
    return RestSource.from_config(config)


def pull(source: RestSource, resume: Checkpoint | None = None) -> list[dict[str, Any]]:
    return [r for p in source.extract("rows", Window(None, None), resume) for r in p.records]


def test_an_exact_multiple_ends_on_416_without_an_error(server: RangeServer) -> None:
    assert [r["id"] for r in pull(make_source(server.url))] == list(range(30))
    assert server.ranges == ["records=0-10", "records=10-20", "records=20-30", "records=30-40"]


def test_a_short_last_page_stops_without_asking_again(server: RangeServer) -> None:
    server.count = 25
    assert len(pull(make_source(server.url))) == 25
    assert server.ranges[-1] == "records=20-30"


def test_the_checkpoint_resumes_at_the_next_range(server: RangeServer) -> None:
    source = make_source(server.url)
    first = next(iter(source.extract("rows", Window(None, None), None)))
    assert [r["id"] for r in pull(source, first.checkpoint)] == list(range(10, 30))


def test_a_failed_range_is_retried_with_the_same_range(server: RangeServer) -> None:
    server.faults.append(Fault(status=503, times=1))
    source = make_source(server.url)
    source.client.sleep = lambda _s: None
    assert len(pull(source)) == 30
    assert server.ranges[:2] == ["records=0-10", "records=10-20"]  # the 503 never reached it
