"""The map stage's driver writes store exactly the rows the pydantic path stored, on both
databases: the same JSON, hash and typed columns read back through SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from concord.config import load_config
from concord.errors import RecordRejected
from concord.hashing import digest
from concord.model import ENTITY_MODELS
from concord.pipeline import RunOptions, open_context
from concord.pipeline.context import RunContext
from concord.pipeline.map import canonical_row, map_entity
from concord.pipeline.replay import mapping_fingerprint
from concord.store import StagedRow
from concord.store import tables as t
from sandbox.erp_data import ENTITIES, ErpDataset
from tests.reliability.conftest import write_config


@pytest.fixture
def ctx(store_url: str, tmp_path: Path) -> Iterator[RunContext]:
    config = write_config(
        tmp_path / "c.yaml",
        store_url=store_url,
        erp_url="http://127.0.0.1:9",
        crm_url="http://127.0.0.1:9",
        batch_size=40,
    )
    context = open_context(load_config(config), RunOptions(trigger="test"))
    context.store.migrate()
    yield context
    context.store.dispose()


def _stage(ctx: RunContext, entity: str, records: list[dict[str, Any]]) -> None:
    rows = []
    for record in records:
        payload = orjson.dumps(record)
        rows.append(StagedRow(str(record["id"]), payload, digest(payload), None))
    with ctx.store.begin() as conn:
        ctx.store.stage(conn, "sandbox_erp", entity, rows, ctx.run_id)


@pytest.mark.parametrize("entity", ENTITIES)
def test_driver_rows_equal_the_rows_of_the_pydantic_path(ctx: RunContext, entity: str) -> None:
    dataset = ErpDataset.generate(seed=11, customers=30)
    records = list(dataset.iter_all(entity))[:120]
    assert records
    _stage(ctx, entity, records)
    report = map_entity(ctx, "sandbox_erp", entity)
    mapping = ctx.mappings[("sandbox_erp", entity)]
    model = ENTITY_MODELS[mapping.entity]
    fp = mapping_fingerprint(mapping)
    expected: dict[str, dict[str, Any]] = {}
    for record in records:
        try:
            out = mapping.apply(record)
            out.pop("id", None)
            out["ref"] = {"system": "sandbox_erp", "entity": entity, "id": str(record["id"])}
            valid = model.model_validate(out)
        except (RecordRejected, ValidationError):
            continue
        row = canonical_row(mapping.entity, valid, ctx.run_id, fp)
        # the row hash is the digest of the JSON the model writes (field order, not sorted)
        row["hash"] = digest(valid.__pydantic_serializer__.to_json(valid))
        expected[row["source_id"]] = row
    table = t.CANONICAL_TABLES[mapping.entity]
    with ctx.store.engine.connect() as conn:
        stored = {r["source_id"]: dict(r) for r in conn.execute(select(table)).mappings()}
    assert report.mapped == len(expected) == len(stored) > len(records) // 2
    for sid, want in expected.items():
        got = stored[sid]
        for column, value in want.items():
            assert got[column] == value, f"{entity} {sid}: {column}"


def test_a_record_mapped_again_replaces_its_row_and_a_repeat_in_one_batch_keeps_the_last(
    ctx: RunContext,
) -> None:
    first = {
        "id": "SO-1",
        "number": "SO-1",
        "customer_id": "C-1",
        "order_date": "2025-03-01T10:15:00Z",
        "state": "done",
        "currency": "EUR",
        "amount_untaxed": "100.00",
        "amount_tax": "19.00",
        "amount_total": "119.00",
        "lines": [{"sku": "P-1", "name": "Widget", "qty": 2, "unit_price": "50.00"}],
        "updated_at": "2025-03-02T08:00:00Z",
    }
    _stage(ctx, "orders", [first])
    map_entity(ctx, "sandbox_erp", "orders")
    changed = {**first, "amount_total": "1.00", "amount_untaxed": "1.00", "amount_tax": "0"}
    _stage(ctx, "orders", [changed])
    map_entity(ctx, "sandbox_erp", "orders")
    with ctx.store.engine.connect() as conn:
        rows = conn.execute(select(t.orders.c.gross_total, t.orders.c.data)).all()
    assert len(rows) == 1
    assert str(rows[0].gross_total) == "1"
    assert rows[0].data["gross_total"] == "1.00"
    columns = [
        "source",
        "source_id",
        "number",
        "customer_id",
        "ordered_at",
        "status",
        "currency",
        "net_total",
        "gross_total",
        "data",
        "hash",
        "updated_at",
        "run_id",
        "mapping_fp",
    ]
    stored = ctx.store.engine.connect()
    try:
        base = list(stored.execute(select(*[t.orders.c[c] for c in columns])).one())
    finally:
        stored.close()
    procs = ctx.store.driver_processors(t.orders, columns)

    def driver(row: list[Any]) -> tuple[Any, ...]:
        values = []
        for proc, value, col in zip(procs, row, columns, strict=True):
            if col == "data":
                values.append(orjson.dumps(value).decode())
            else:
                values.append(proc(value) if proc is not None and value is not None else value)
        return tuple(values)

    one, two = list(base), list(base)
    one[5], two[5] = "open", "cancelled"
    with ctx.store.begin() as conn:
        ctx.store.upsert_rows(
            conn, t.orders, columns, [driver(one), driver(two)], ["source", "source_id"]
        )
    with ctx.store.engine.connect() as conn:
        assert conn.execute(select(t.orders.c.status)).scalars().all() == ["cancelled"]
