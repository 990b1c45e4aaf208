"""Sharded extract: one large entity pulled as several time windows, each its own task.

Each shard keeps its own checkpoint in ``shard_watermarks`` (a retried task resumes after its
last committed page; a shard already done in this run is not pulled again), and the entity's
watermark advances only in ``commit_shards``, once every shard of the run is done, so it never
moves past data a failed shard did not stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from concord.contracts import Window
from concord.errors import StoreError
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.extract import follow_up, max_cursor, pull, sweep, sweep_due
from concord.pipeline.reports import ExtractReport, ShardReport
from concord.store import tables as t
from concord.utc import utcnow


@dataclass(frozen=True, slots=True)
class Shard:
    """One slice of an entity's window: ``index`` of ``count``, records in [start, end)."""

    index: int
    count: int
    start: datetime | None
    end: datetime | None

    @property
    def key(self) -> str:
        """``index/count``, how the shard is named in the store and in reports."""
        return f"{self.index}/{self.count}"


def shard_windows(
    start: datetime | None, end: datetime | None, count: int, since: datetime | None = None
) -> list[Shard]:
    """Split [start, end) into ``count`` contiguous windows that together cover it exactly.

    When ``start`` is None (first load) the windows divide [since, end) and the first one is
    open at its start; when the window cannot be divided (no lower bound, or no end) the first
    shard takes it all and the others are empty.
    """
    lower = start or since
    if lower is None or end is None or lower >= end:
        first = Shard(0, count, start, end)
        empty_at = end or start
        return [first, *(Shard(i, count, empty_at, empty_at) for i in range(1, count))]
    step = (end - lower) / count
    bounds = [lower + step * i for i in range(count)] + [end]
    shards = [Shard(i, count, bounds[i], bounds[i + 1]) for i in range(count)]
    shards[0] = Shard(0, count, start, bounds[1])
    return shards


def _shard_row(ctx: RunContext, source_name: str, entity: str, key: str) -> dict[str, Any] | None:
    sw = t.shard_watermarks
    with ctx.store.engine.connect() as conn:
        row = (
            conn.execute(
                select(sw).where(
                    sw.c.source == source_name, sw.c.entity == entity, sw.c.shard == key
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def _save_shard(
    ctx: RunContext,
    conn: Connection,
    source_name: str,
    entity: str,
    shard: Shard,
    *,
    status: str,
    checkpoint: str | None,
    high: str | None,
) -> None:
    ctx.store.upsert(
        conn,
        t.shard_watermarks,
        [
            {
                "source": source_name,
                "entity": entity,
                "shard": shard.key,
                "run_id": ctx.run_id,
                "window_start": shard.start,
                "window_end": shard.end,
                "status": status,
                "checkpoint": checkpoint,
                "high_cursor": high,
                "updated_at": utcnow(),
            }
        ],
        ["source", "entity", "shard"],
    )


def shard_scope(source_name: str, entity: str, shard: Shard) -> str:
    """The stage-report scope of one shard: ``source/entity#i/n``."""
    return f"{source_name}/{entity}#{shard.key}"


def extract_shard(ctx: RunContext, source_name: str, entity: str, shard: Shard) -> ShardReport:
    """Pull one shard of an entity with its own checkpoint; the entity watermark is not touched.

    A retry of the same run resumes after the shard's last committed page; a shard already done
    in this run is not pulled again.
    """
    started = utcnow()
    row = _shard_row(ctx, source_name, entity, shard.key)
    same = (
        row is not None
        and row["run_id"] == ctx.run_id
        and row["window_start"] == shard.start
        and row["window_end"] == shard.end
    )
    if same and row is not None and row["status"] == "done":
        return ShardReport(shard=shard.key, skipped="already done in this run")
    resume = row["checkpoint"] if same and row is not None else None
    high = row["high_cursor"] if same and row is not None else None
    report = ShardReport(
        shard=shard.key,
        resumed=resume is not None,
        window_start=shard.start.isoformat() if shard.start else None,
        window_end=shard.end.isoformat() if shard.end else None,
    )
    with ctx.store.begin() as conn:
        _save_shard(
            ctx, conn, source_name, entity, shard, status="running", checkpoint=resume, high=high
        )

    def save_progress(conn: Connection, checkpoint: str | None, high: str | None) -> None:
        _save_shard(
            ctx,
            conn,
            source_name,
            entity,
            shard,
            status="running",
            checkpoint=checkpoint,
            high=high,
        )

    high = pull(
        ctx,
        source_name,
        entity,
        Window(start=shard.start, end=shard.end),
        resume,
        high,
        report,
        save_progress,
    )
    with ctx.store.begin() as conn:
        _save_shard(
            ctx, conn, source_name, entity, shard, status="done", checkpoint=None, high=high
        )
    report.high_cursor = high
    record_stage(ctx, "extract_shard", shard_scope(source_name, entity, shard), started, report)
    return report


def commit_shards(ctx: RunContext, source_name: str, entity: str, count: int) -> ExtractReport:
    """Advance the entity watermark once all ``count`` shards of this run are done.

    Raises StoreError naming the shards that are missing or unfinished, so the entity's
    watermark never moves past data a failed shard did not stage.
    """
    started = utcnow()
    sw = t.shard_watermarks
    with ctx.store.engine.connect() as conn:
        rows = {
            r["shard"]: dict(r)
            for r in conn.execute(
                select(sw).where(sw.c.source == source_name, sw.c.entity == entity)
            ).mappings()
        }
    keys = [f"{i}/{count}" for i in range(count)]
    missing = [
        k
        for k in keys
        if k not in rows or rows[k]["run_id"] != ctx.run_id or rows[k]["status"] != "done"
    ]
    if missing:
        raise StoreError(
            f"extract {source_name}/{entity}: shards {', '.join(missing)} of run {ctx.run_id} "
            "are not committed; the watermark stays where it was"
        )
    state = ctx.store.watermark(source_name, entity)
    high: str | None = None
    for k in keys:
        high = max_cursor(high, rows[k]["high_cursor"])
    ecfg = ctx.config.sources[source_name].entities[entity]
    full = ctx.options.full_refresh or ecfg.full_refresh
    cursor = (high if full else max_cursor(state.cursor, high)) or state.cursor
    with ctx.store.begin() as conn:
        ctx.store.save_checkpoint(
            conn,
            source_name,
            entity,
            cursor=cursor,
            checkpoint=None,
            checkpoint_cursor=None,
            run_id=ctx.run_id,
        )
    report = _aggregate_shard_reports(ctx, source_name, entity, keys)
    report.watermark = cursor
    report.shards = count
    follow_up(ctx, source_name, entity, report)  # revisit set and triggers, once per entity
    if sweep_due(ctx, ecfg, state.swept_at):
        report.swept = sweep(ctx, source_name, entity)
    record_stage(ctx, "extract", f"{source_name}/{entity}", started, report)
    return report


def _aggregate_shard_reports(
    ctx: RunContext, source_name: str, entity: str, keys: list[str]
) -> ExtractReport:
    sr = t.stage_reports
    scopes = [f"{source_name}/{entity}#{k}" for k in keys]
    total = ExtractReport()
    with ctx.store.engine.connect() as conn:
        bodies = conn.execute(
            select(sr.c.report).where(
                sr.c.run_id == ctx.run_id, sr.c.stage == "extract_shard", sr.c.scope.in_(scopes)
            )
        ).scalars()
        for body in bodies:
            total.add(ShardReport.from_dict(body))
    return total
