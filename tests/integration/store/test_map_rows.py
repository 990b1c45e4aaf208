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


def _context(store_url: str, config_path: Path) -> RunContext:
    """A run context on the store: the sandbox ERP's mappings, 40-record map batches."""
    config = write_config(
        config_path,
        store_url=store_url,
        erp_url="http://127.0.0.1:9",
        crm_url="http://127.0.0.1:9",
        batch_size=40,
    )
    context = open_context(load_config(config), RunOptions(trigger="test"))
    context.store.migrate()
    return context


@pytest.fixture
def ctx(store_url: str, tmp_path: Path) -> Iterator[RunContext]:
    context = _context(store_url, tmp_path / "c.yaml")
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


def _mapped_state(ctx: RunContext, entity: str) -> tuple[dict[str, Any], list[Any], int]:
    mapping = ctx.mappings[("sandbox_erp", entity)]
    table = t.CANONICAL_TABLES[mapping.entity]
    with ctx.store.engine.connect() as conn:
        rows = {
            r["source_id"]: {k: v for k, v in dict(r).items() if k != "run_id"}
            for r in conn.execute(select(table)).mappings()
        }
        rejects = sorted(
            conn.execute(
                select(t.rejects.c.source_id, t.rejects.c.field, t.rejects.c.payload).where(
                    t.rejects.c.entity == entity
                )
            ).all()
        )
        pending = conn.execute(
            select(t.raw_state.c.source_id).where(
                t.raw_state.c.entity == entity, t.raw_state.c.pending.is_(True)
            )
        ).all()
    return rows, rejects, len(pending)


def test_batches_mapped_by_worker_processes_store_what_the_stage_itself_stores(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concord.pipeline import map as map_stage
    from concord.pipeline.map_batches import MapPool

    dataset = ErpDataset.generate(seed=11, customers=30)
    records = list(dataset.iter_all("orders"))[:150]
    records[3] = {**records[3], "amount_total": "not a number"}  # a reject, payload kept
    records[7] = {**records[7], "order_date": None}
    outcomes = []
    for workers in (0, 1):
        context = _context(store_url, tmp_path / f"c{workers}.yaml")
        with context.store.begin() as conn:  # the same store for both: start empty
            for table in (t.orders, t.rejects, t.raw_state, t.raw_records):
                conn.execute(table.delete())
        _stage(context, "orders", records)
        monkeypatch.setattr(map_stage, "MIN_RECORDS_FOR_WORKERS", 1)
        with MapPool(workers) as pool:
            report = map_entity(context, "sandbox_erp", "orders", pool=pool)
        assert report.workers == workers
        outcomes.append((report.mapped, report.rejected, *_mapped_state(context, "orders")))
        context.store.dispose()
    in_process, in_workers = outcomes
    assert in_process[1] >= 2  # the two broken records were refused, with their payloads
    assert in_workers == in_process
    assert in_workers[4] == 0  # nothing left pending


def test_a_worker_refuses_a_mapping_file_that_changed_since_the_run_loaded_it(
    tmp_path: Path,
) -> None:
    from concord.errors import MappingError
    from concord.pipeline.map_batches import BatchJob, MapPool

    source = Path("mappings/sandbox_erp/orders.yaml").resolve()
    copy = tmp_path / "orders.yaml"
    copy.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    job = BatchJob(
        "sandbox_erp", "orders", str(copy), "fingerprint-of-another-file", "", "sqlite", "r"
    )
    payload = orjson.dumps({"id": "SO-1"})
    with MapPool(1) as pool, pytest.raises(MappingError, match="changed while the run"):
        list(pool.mapped(job, [[("SO-1", payload, digest(payload))]]))
