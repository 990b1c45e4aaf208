"""Extract stage: pull one source entity into raw staging, page by page.

Each page is staged together with the checkpoint that resumes after it, in one transaction; the
watermark advances only when the whole window was committed. Records without an id are stored as
rejects with their payload. Records an ``exclude`` of the entity (or of the source itself, such
as Tryton's company party) names are left out and counted by reason; one staged before it was
excluded is removed with its canonical row. Where the window starts is one rule for the CLI and
Airflow (``window_start``). A large entity can instead be pulled in shards
(``concord.pipeline.shards``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from concord.contracts import (
    Checkpoint,
    EntityConfig,
    ExcludingSource,
    Exclusion,
    Source,
    Window,
    build_source,
)
from concord.errors import SourceError
from concord.hashing import digest
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.reports import ExtractReport, PullCounts
from concord.redact import contains_secret
from concord.store import Reject, StagedRow
from concord.store import tables as t
from concord.utc import parse_time, utcnow

ProgressSaver = Callable[[Connection, str | None, str | None], None]
"""Saves (checkpoint token, highest cursor so far) in the transaction that staged a page."""


def window_start(
    requested: datetime | None, watermark: str | None, *, full_refresh: bool
) -> datetime | None:
    """Where an extract's window starts: the requested start, widened back to the watermark.

    Never synced (or a full refresh): from the beginning. Otherwise the watermark, or the
    requested start (Airflow's data interval) when that is earlier, so nights missed while the
    scheduler was down are pulled too; records pulled twice are staged as unchanged, so this
    stays idempotent.
    """
    if full_refresh or watermark is None:
        return None
    try:
        mark = parse_time(watermark)
    except ValueError:
        return requested
    if requested is None:
        return mark
    return min(requested, mark)


def refuse_secret_checkpoint(source: str, checkpoint: str | None) -> None:
    """Refuse to store a checkpoint holding a registered secret (an echoed key, a header)."""
    if checkpoint and contains_secret(checkpoint):
        raise SourceError(
            "a checkpoint would hold a secret (the source echoes credentials in its paging "
            "token); not stored",
            source=source,
        )


def _cursor_key(value: str | None) -> Any:
    if value is None:
        return (0, "")
    try:
        return (1, parse_time(value).timestamp())
    except ValueError:
        return (2, value)


def max_cursor(a: str | None, b: str | None) -> str | None:
    """The later of two cursor values (times compared as times, other values as text)."""
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


class Excluder:
    """The entity's exclusions as (path, values, reason); tells whether a record is left out."""

    def __init__(self, rules: list[Exclusion]) -> None:
        self.rules = [(r.path.split("."), frozenset(r.values), r.describe()) for r in rules]

    @classmethod
    def for_entity(cls, source: Source, entity: str, ecfg: EntityConfig) -> Excluder:
        """The configured ``exclude`` rules and those the source adds itself."""
        rules = list(ecfg.exclude)
        if isinstance(source, ExcludingSource):
            rules.extend(source.exclusions(entity))
        return cls(rules)

    def reason(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` is left out, or None when it is kept."""
        for parts, values, why in self.rules:
            value: Any = record
            for part in parts:
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None and str(value) in values:
                return why
        return None


def pull(
    ctx: RunContext,
    source_name: str,
    entity: str,
    window: Window,
    resume: str | None,
    high: str | None,
    report: PullCounts,
    save_progress: ProgressSaver,
) -> str | None:
    """Stage every page of the window; return the highest cursor seen (with ``high``)."""
    scfg = ctx.config.sources[source_name]
    ecfg = scfg.entities[entity]
    source = build_source(scfg)
    mapping = ctx.mappings.get((source_name, entity))
    canonical = t.CANONICAL_TABLES.get(mapping.entity) if mapping is not None else None
    try:
        excluder = Excluder.for_entity(source, entity, ecfg)
        for page in source.extract(entity, window, Checkpoint(resume) if resume else None):
            rows: list[StagedRow] = []
            rejects: list[Reject] = []
            dropped: list[str] = []
            for record in page.records:
                payload = orjson.dumps(record)
                sid = record.get(ecfg.id_field) if isinstance(record, dict) else None
                if sid in (None, ""):
                    report.missing_id += 1
                    rejects.append(
                        Reject(
                            stage="extract",
                            source=source_name,
                            entity=entity,
                            source_id=None,
                            field=ecfg.id_field,
                            reason=f"record has no '{ecfg.id_field}'",
                            payload=payload,
                        )
                    )
                    continue
                why = excluder.reason(record) if excluder.rules else None
                if why is not None:
                    report.excluded[why] = report.excluded.get(why, 0) + 1
                    dropped.append(str(sid))
                    continue
                cursor = _cursor_value(record, ecfg.cursor_field)
                high = max_cursor(high, cursor)
                rows.append(StagedRow(str(sid), payload, digest(payload), cursor))
            token = page.checkpoint.token if page.checkpoint else None
            refuse_secret_checkpoint(source_name, token)
            with ctx.store.begin() as conn:
                if dropped and canonical is not None:
                    ids = [ecfg.canonical_id(sid) for sid in dropped]
                    ctx.store.drop_records(conn, source_name, entity, dropped, canonical, ids)
                    ctx.store.resolve_rejects(
                        conn,
                        stage="map",
                        source=source_name,
                        entity=entity,
                        source_ids=dropped,
                        run_id=ctx.run_id,
                    )
                counts = ctx.store.stage(conn, source_name, entity, rows, ctx.run_id)
                ctx.store.add_rejects(conn, rejects, run_id=ctx.run_id)
                save_progress(conn, token, high)
            report.pages += 1
            report.records += len(page.records)
            report.new += counts.new
            report.changed += counts.changed
            report.unchanged += counts.unchanged
            ctx.emit("page", source=source_name, entity=entity, records=len(page.records))
    finally:
        source.close()
    return high


def extract(ctx: RunContext, source_name: str, entity: str) -> ExtractReport:
    """Pull one source entity into raw staging, committing page by page with its checkpoint."""
    started = utcnow()
    ecfg = ctx.config.sources[source_name].entities[entity]
    state = ctx.store.watermark(source_name, entity)
    full = ctx.options.full_refresh or ecfg.full_refresh
    start = window_start(ctx.options.window_start, state.cursor, full_refresh=full)
    report = ExtractReport(
        resumed=state.checkpoint is not None,
        window_start=start.isoformat() if start else None,
    )

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

    high = pull(
        ctx,
        source_name,
        entity,
        Window(start=start, end=ctx.options.window_end),
        state.checkpoint,
        state.checkpoint_cursor if state.checkpoint else None,
        report,
        save_progress,
    )
    cursor = high if full else max_cursor(state.cursor, high)
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
    report.watermark = cursor or state.cursor
    record_stage(ctx, "extract", f"{source_name}/{entity}", started, report)
    return report
