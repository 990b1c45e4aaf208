"""Map stage: pending raw records through the compiled mapping into canonical rows.

A record that fails the mapping or the canonical model becomes a reject with the field, reason,
mapping file and line, and the payload, and a canonical row it had from an earlier payload is
quarantined (``concord.store.quarantine``); a record that maps closes its earlier rejects. Raw
records are marked mapped (with the mapping's fingerprint) in the same transaction as their
canonical rows, so a crash repeats nothing; records mapped by an older mapping are replayed first
(``concord.pipeline.replay``). The records are mapped batch by batch by
``concord.pipeline.map_batches`` (a big entity's in worker processes); the rows are written here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from concord.hashing import json_digest
from concord.model import CanonicalModel
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.map_batches import (
    MIN_RECORDS_FOR_WORKERS,
    Batch,
    BatchJob,
    BatchMapper,
    BatchResult,
    CanonicalRows,
    MapPool,
)
from concord.pipeline.replay import mapping_fingerprint, replay_all, replay_changed
from concord.pipeline.reports import MapReport
from concord.store import tables as t
from concord.store.quarantine import quarantine_rows, release
from concord.utc import utcnow


def canonical_row(
    entity: str, model: CanonicalModel, run_id: str, mapping_fp: str | None = None
) -> dict[str, Any]:
    """The canonical table row of one mapped record (its JSON, hash and query columns)."""
    table = t.CANONICAL_TABLES[entity]
    data = model.model_dump(mode="json")
    row: dict[str, Any] = {
        "source": data["ref"]["system"],
        "source_id": data["ref"]["id"],
        "data": data,
        "hash": json_digest(data),
        "updated_at": getattr(model, "updated_at", None),
        "run_id": run_id,
        "mapping_fp": mapping_fp,
        "state": getattr(getattr(model, "record_state", None), "value", None),  # issue 14
    }
    for col in table.columns.keys():
        if col in row:
            continue
        if col == "email":
            emails = getattr(model, "emails", [])
            row[col] = emails[0] if emails else None
        else:
            value = getattr(model, col)
            row[col] = (
                value.value
                if hasattr(value, "value") and not isinstance(value, (str, int))
                else value
            )
    return row


def map_entity(
    ctx: RunContext,
    source_name: str,
    entity: str,
    *,
    replay: Literal["changed", "all"] = "changed",
    pool: MapPool | None = None,
) -> MapReport:
    """Map pending raw records to canonical rows; failures become rejects with the payload.

    First the staged records mapped by another mapping are made pending again (``replay``:
    ``"all"`` replays every staged record, as ``concord remap`` asks). Each batch is mapped by
    ``BatchMapper`` (``concord.pipeline.map_batches``), in this process or, for an entity of at
    least ``MIN_RECORDS_FOR_WORKERS`` pending records, by ``pool``'s worker processes; its rows
    are written through the driver here, one transaction per batch, in the order read.
    """
    started = utcnow()
    mapping = ctx.mappings[(source_name, entity)]
    ecfg = ctx.config.sources[source_name].entities[entity]
    builder = CanonicalRows(ctx.store.engine.dialect, mapping.entity)
    table = builder.table
    fingerprint = mapping_fingerprint(mapping)
    report = MapReport(canonical_entity=mapping.entity, mapping_fp=fingerprint, replay=replay)
    if replay == "all":
        report.replayed = replay_all(ctx.store, source_name, entity)
    else:
        report.replayed = replay_changed(ctx.store, source_name, entity, fingerprint)
    # Nothing to close or release when the entity has no open reject and nothing quarantined
    # (a first night): rows this run rejects or quarantines belong to other records.
    open_work = ctx.store.has_open_work(source_name, entity, table.name)
    # PostgreSQL plans the batch reads and mark_mapped by key only with fresh statistics
    ctx.store.refresh_statistics([t.raw_state, t.raw_records])
    drift: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    run_id = ctx.run_id
    canonical_id = ecfg.canonical_id
    batches = ctx.store.pending_batches(source_name, entity, ctx.config.batch_size)
    results: Iterable[tuple[Batch, BatchResult]]
    if (
        pool is not None
        and pool.workers > 0
        and mapping.path.is_file()
        and ctx.store.pending_count(source_name, entity) >= MIN_RECORDS_FOR_WORKERS
    ):
        job = BatchJob(
            source_name,
            entity,
            str(mapping.path.resolve()),
            fingerprint,
            ecfg.id_prefix,
            ctx.store.dialect,
            run_id,
        )
        results = pool.mapped(job, batches)
        report.workers = pool.workers
    else:
        mapper = BatchMapper(
            mapping, source_name, entity, ecfg.id_prefix, builder, fingerprint, run_id
        )
        results = ((batch, mapper.map(batch)) for batch in batches)
    for batch, result in results:
        rows, rejects, ok_ids = result.rows, result.rejects, result.ok_ids
        drift.update(result.drift)
        missing.update(result.missing)
        report.records += len(batch)
        bad_ids = [canonical_id(r.source_id) for r in rejects if r.source_id is not None]
        with ctx.store.begin() as conn:
            ctx.store.widen_cache(conn)  # SQLite: index pages stay cached across batches
            # one row per staged record of the batch: no key repeats
            ctx.store.upsert_rows(
                conn, table, builder.columns, rows, ["source", "source_id"], unique=True
            )
            if open_work:
                release(
                    conn, table, source=source_name, source_ids=[canonical_id(s) for s in ok_ids]
                )
                ctx.store.resolve_rejects(
                    conn,
                    stage="map",
                    source=source_name,
                    entity=entity,
                    source_ids=ok_ids,
                    run_id=run_id,
                )
            report.quarantined += quarantine_rows(
                ctx.store,
                conn,
                table,
                source=source_name,
                entity=entity,
                source_ids=bad_ids,
                run_id=run_id,
            )
            ctx.store.add_rejects(conn, rejects, run_id=run_id)
            ctx.store.mark_mapped(
                conn, source_name, entity, [(s, h) for s, _p, h in batch], fingerprint
            )
        report.mapped += len(rows)
        report.rejected += len(rejects)
        ctx.emit("mapped", source=source_name, entity=entity, records=len(batch))
    report.unmapped_fields = dict(drift.most_common(20))
    report.missing_fields = dict(missing.most_common(20))
    record_stage(ctx, "map", f"{source_name}/{entity}", started, report)
    return report
