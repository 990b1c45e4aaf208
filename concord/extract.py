"""Extract stage: pull one source entity (or one shard of it) into raw staging, page by page.

Each page is staged together with the checkpoint that resumes after it, in one transaction; the
watermark advances only when the whole window was committed. Records without an id are stored as
rejects with their payload. A large entity can be split into shards (time windows) that run as
separate tasks: each shard keeps its own checkpoint in ``shard_watermarks`` and the entity's
watermark advances only in ``commit_shards``, once every shard of the run is done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from concord.contracts import Checkpoint, Window, build_source
from concord.errors import StoreError
from concord.run import RunContext, record_stage
from concord.store import StagedRow
from concord.store import tables as t
from concord.utc import parse_time, utcnow

ProgressSaver = Callable[[Connection, str | None, str | None], None]


@dataclass(frozen=True, slots=True)
class Shard:
    """One slice of an entity's window: ``index`` of ``count``, records in [start, end)."""

    index: int
    count: int
    start: datetime | None
    end: datetime | None

    @property
    def key(self) -> str:
        return f"{self.index}/{self.count}"


def _hash(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def _cursor_key(value: str | None) -> Any:
    if value is None:
        return (0, "")
    try:
        return (1, parse_time(value).timestamp())
    except ValueError:
        return (2, value)


def _max_cursor(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if _cursor_key(a) >= _cursor_key(b) else b


def _cursor_value(record: dict[str, Any], path: str | None) -> str | None:
    if not path:
        return None
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else str(value)


def _new_report(start: datetime | None, resumed: bool) -> dict[str, Any]:
    return {
        "pages": 0,
        "records": 0,
        "new": 0,
        "changed": 0,
        "unchanged": 0,
        "missing_id": 0,
        "resumed": resumed,
        "window_start": start.isoformat() if start else None,
    }


def _pull(
    ctx: RunContext,
    source_name: str,
    entity: str,
    window: Window,
    resume: str | None,
    high: str | None,
    report: dict[str, Any],
    save_progress: ProgressSaver,
) -> str | None:
    """Stage every page of the window; return the highest cursor seen (with ``high``)."""
    scfg = ctx.config.sources[source_name]
    ecfg = scfg.entities[entity]
    source = build_source(scfg)
    try:
        for page in source.extract(entity, window, Checkpoint(resume) if resume else None):
            rows: list[StagedRow] = []
            rejects: list[dict[str, Any]] = []
            for record in page.records:
                payload = orjson.dumps(record)
                sid = record.get(ecfg.id_field) if isinstance(record, dict) else None
                if sid in (None, ""):
                    report["missing_id"] += 1
                    rejects.append(
                        {
                            "run_id": ctx.run_id,
                            "stage": "extract",
                            "source": source_name,
                            "entity": entity,
                            "source_id": None,
                            "field": ecfg.id_field,
                            "reason": f"record has no '{ecfg.id_field}'",
                            "payload": payload,
                        }
                    )
                    continue
                cursor = _cursor_value(record, ecfg.cursor_field)
                high = _max_cursor(high, cursor)
                rows.append(StagedRow(str(sid), payload, _hash(payload), cursor))
            with ctx.store.begin() as conn:
                counts = ctx.store.stage(conn, source_name, entity, rows, ctx.run_id)
                ctx.store.add_rejects(conn, rejects)
                save_progress(conn, page.checkpoint.token if page.checkpoint else None, high)
            report["pages"] += 1
            report["records"] += len(page.records)
            report["new"] += counts.new
            report["changed"] += counts.changed
            report["unchanged"] += counts.unchanged
            ctx.emit("page", source=source_name, entity=entity, records=len(page.records))
    finally:
        source.close()
    return high


def extract(ctx: RunContext, source_name: str, entity: str) -> dict[str, Any]:
    """Pull one source entity into raw staging, committing page by page with its checkpoint."""
    started = utcnow()
    ecfg = ctx.config.sources[source_name].entities[entity]
    state = ctx.store.watermark(source_name, entity)
    full = ctx.options.full_refresh or ecfg.full_refresh
    start = ctx.options.window_start or (
        None if full or state.cursor is None else parse_time(state.cursor)
    )
    report = _new_report(start, resumed=state.checkpoint is not None)

    def save_progress(conn: Connection, checkpoint: str | None, high: str | None) -> None:
        ctx.store.save_checkpoint(
            conn,
            source_name,
            entity,
            cursor=state.cursor,
            checkpoint=checkpoint,
            checkpoint_cursor=high,
            run_id=ctx.run_id,
        )

    high = _pull(
        ctx,
        source_name,
        entity,
        Window(start=start, end=ctx.options.window_end),
        state.checkpoint,
        state.checkpoint_cursor if state.checkpoint else None,
        report,
        save_progress,
    )
    cursor = high if full else _max_cursor(state.cursor, high)
    with ctx.store.begin() as conn:
        ctx.store.save_checkpoint(
            conn,
            source_name,
            entity,
            cursor=cursor or state.cursor,
            checkpoint=None,
            checkpoint_cursor=None,
            run_id=ctx.run_id,
        )
    report["watermark"] = cursor or state.cursor
    record_stage(ctx, "extract", f"{source_name}/{entity}", started, report)
    return report


# -- shards ------------------------------------------------------------------------------------


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
    return f"{source_name}/{entity}#{shard.key}"


def extract_shard(ctx: RunContext, source_name: str, entity: str, shard: Shard) -> dict[str, Any]:
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
        return {"shard": shard.key, "skipped": "already done in this run"}
    resume = row["checkpoint"] if same and row is not None else None
    high = row["high_cursor"] if same and row is not None else None
    report = _new_report(shard.start, resumed=resume is not None)
    report["shard"] = shard.key
    report["window_end"] = shard.end.isoformat() if shard.end else None
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

    high = _pull(
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
    report["high_cursor"] = high
    record_stage(ctx, "extract_shard", shard_scope(source_name, entity, shard), started, report)
    return report


def commit_shards(ctx: RunContext, source_name: str, entity: str, count: int) -> dict[str, Any]:
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
        high = _max_cursor(high, rows[k]["high_cursor"])
    ecfg = ctx.config.sources[source_name].entities[entity]
    full = ctx.options.full_refresh or ecfg.full_refresh
    cursor = (high if full else _max_cursor(state.cursor, high)) or state.cursor
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
    report["watermark"] = cursor
    report["shards"] = count
    record_stage(ctx, "extract", f"{source_name}/{entity}", started, report)
    return report


def _aggregate_shard_reports(
    ctx: RunContext, source_name: str, entity: str, keys: list[str]
) -> dict[str, Any]:
    sr = t.stage_reports
    scopes = [f"{source_name}/{entity}#{k}" for k in keys]
    total = _new_report(None, resumed=False)
    with ctx.store.engine.connect() as conn:
        bodies = conn.execute(
            select(sr.c.report).where(
                sr.c.run_id == ctx.run_id, sr.c.stage == "extract_shard", sr.c.scope.in_(scopes)
            )
        ).scalars()
        for body in bodies:
            for field in ("pages", "records", "new", "changed", "unchanged", "missing_id"):
                total[field] += int(body.get(field, 0))
            total["resumed"] = total["resumed"] or bool(body.get("resumed"))
    return total
