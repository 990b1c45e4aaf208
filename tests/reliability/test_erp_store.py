"""The SQLite-backed ERP storage pages exactly like the in-memory sandbox dataset (same records,
same order, same window and cursor semantics), so the REST ERP serves either the same way."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sandbox.erp_data import ENTITIES, ErpDataset, parse_iso
from sandbox.erp_store import ErpStore
from sandbox.rest_erp import RestErpServer


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[ErpDataset, ErpStore]:
    dataset = ErpDataset.generate(seed=3, customers=30)
    store = ErpStore(tmp_path_factory.mktemp("erp") / "erp.sqlite")
    for entity in ENTITIES:
        store.add_many(entity, dataset.iter_all(entity))
    return dataset, store


def _walk(storage: ErpDataset | ErpStore, entity: str, **window: object) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        rows = storage.page(entity, after=after, limit=7, **window)  # type: ignore[arg-type]
        ids += [r["id"] for r in rows]
        if len(rows) < 7:
            return ids
        after = (rows[-1]["updated_at"], rows[-1]["id"])


@pytest.mark.parametrize("entity", ENTITIES)
def test_paging_matches_the_in_memory_dataset(
    pair: tuple[ErpDataset, ErpStore], entity: str
) -> None:
    dataset, store = pair
    assert _walk(store, entity) == _walk(dataset, entity)
    assert store.count(entity) == dataset.count(entity)


def test_window_is_inclusive_start_exclusive_end(pair: tuple[ErpDataset, ErpStore]) -> None:
    dataset, store = pair
    rows = list(dataset.iter_all("orders"))
    since = parse_iso(rows[10]["updated_at"])
    before = parse_iso(rows[40]["updated_at"]) + timedelta(microseconds=1)
    window = {"updated_since": since, "updated_before": before}
    got = _walk(store, "orders", **window)
    assert got == _walk(dataset, "orders", **window)
    assert rows[10]["id"] in got and rows[40]["id"] in got


def test_get_and_replace_move_the_record_to_its_new_time(tmp_path: Path) -> None:
    store = ErpStore(tmp_path / "e.sqlite", ["customers"])
    store.add_many(
        "customers",
        [
            {"id": "C-1", "updated_at": "2026-01-01T00:00:00Z"},
            {"id": "C-2", "updated_at": "2026-01-02T00:00:00Z"},
        ],
    )
    record = store.get("customers", "C-1")
    assert record is not None
    store.replace_many("customers", [{**record, "updated_at": "2026-01-03T00:00:00.5Z"}])
    assert [r["id"] for r in store.page("customers", limit=10)] == ["C-2", "C-1"]
    assert store.get("customers", "C-9") is None
    assert not store.has_entity("orders")


def test_rest_erp_serves_the_sqlite_store(pair: tuple[ErpDataset, ErpStore]) -> None:
    import requests

    dataset, store = pair
    with RestErpServer(store, token=None) as erp:
        body = requests.get(f"{erp.url}/api/v1/customers?limit=5", timeout=5).json()
        assert [r["id"] for r in body["data"]] == _walk(dataset, "customers")[:5]
        assert body["next_cursor"]
