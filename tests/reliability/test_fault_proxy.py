"""The fault proxy relays requests unchanged and injects each kind of fault it promises."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from sandbox.crm import CrmServer
from sandbox.fault_proxy import FaultProxy, Toxic


@pytest.fixture
def proxy() -> Iterator[tuple[FaultProxy, CrmServer]]:
    with CrmServer(token=None) as crm, FaultProxy(crm.url) as fp:
        yield fp, crm


URL = "/crm/v3/objects/companies"


def test_relays_requests_and_bodies_unchanged(proxy: tuple[FaultProxy, CrmServer]) -> None:
    fp, crm = proxy
    body = {
        "inputs": [
            {
                "id": "cc_1",
                "idProperty": "concord_id",
                "properties": {"name": "Hansa", "concord_id": "cc_1"},
            }
        ]
    }
    with requests.Session() as s:
        assert s.post(f"{fp.url}{URL}/batch/upsert", json=body, timeout=5).status_code == 200
        direct = s.get(f"{crm.url}{URL}/cc_1?idProperty=concord_id", timeout=5).json()
        proxied = s.get(f"{fp.url}{URL}/cc_1?idProperty=concord_id", timeout=5).json()
    assert proxied == direct and direct["properties"]["name"] == "Hansa"
    assert fp.requests == 2


def test_status_toxic_answers_without_relaying(proxy: tuple[FaultProxy, CrmServer]) -> None:
    fp, crm = proxy
    fp.add(Toxic("status", status=429, retry_after=3, times=1))
    first = requests.get(f"{fp.url}{URL}", timeout=5)
    second = requests.get(f"{fp.url}{URL}", timeout=5)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
    assert second.status_code == 200
    assert crm.request_count(URL) == 1


def test_reset_toxic_drops_the_connection(proxy: tuple[FaultProxy, CrmServer]) -> None:
    fp, crm = proxy
    fp.add(Toxic("reset", times=1))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fp.url}{URL}", timeout=5)
    assert crm.request_count(URL) == 0


def test_reset_after_upstream_loses_only_the_answer(proxy: tuple[FaultProxy, CrmServer]) -> None:
    fp, crm = proxy
    fp.add(Toxic("reset", after_upstream=True, times=1))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fp.url}{URL}", timeout=5)
    assert crm.request_count(URL) == 1


def test_truncate_toxic_sends_half_the_body(proxy: tuple[FaultProxy, CrmServer]) -> None:
    fp, _ = proxy
    fp.add(Toxic("truncate", times=1))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{fp.url}{URL}", timeout=5)


def test_latency_and_drip_slow_the_answer_down(proxy: tuple[FaultProxy, CrmServer]) -> None:
    fp, _ = proxy
    fp.add(Toxic("latency", delay=0.3, times=1))
    started = time.perf_counter()
    assert requests.get(f"{fp.url}{URL}", timeout=5).status_code == 200
    assert time.perf_counter() - started >= 0.3
    fp.add(Toxic("drip", delay=0.05, chunk=4, times=1))
    started = time.perf_counter()
    body = requests.get(f"{fp.url}{URL}", timeout=5).json()
    assert "results" in body
    assert time.perf_counter() - started >= 0.1


def test_every_and_times_pick_which_requests_fail(proxy: tuple[FaultProxy, CrmServer]) -> None:
    fp, _ = proxy
    toxic = fp.add(Toxic("status", status=500, every=2, times=2))
    codes = [requests.get(f"{fp.url}{URL}", timeout=5).status_code for _ in range(6)]
    assert codes == [200, 500, 200, 500, 200, 200]
    assert toxic.fired == 2
