"""Extract stage: pull one source entity into raw staging, page by page.

Each page is staged together with the checkpoint that resumes after it, in one transaction; the
watermark advances only when the whole window was committed. Records without an id are stored as
rejects with their payload.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from concord.config import parse_time
from concord.contracts import Window, build_source
from concord.run import RunContext, record_stage
from concord.store import StagedRow
from concord.store.store import utcnow


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


def extract(ctx: RunContext, source_name: str, entity: str) -> dict[str, Any]:
    """Pull one source entity into raw staging, committing page by page with its checkpoint."""
    started = utcnow()
    scfg = ctx.config.sources[source_name]
    ecfg = scfg.entities[entity]
    state = ctx.store.watermark(source_name, entity)
    full = ctx.options.full_refresh or ecfg.full_refresh
    start = ctx.options.window_start or (
        None if full or state.cursor is None else parse_time(state.cursor)
    )
    window = Window(start=start, end=ctx.options.window_end)
    report: dict[str, Any] = {
        "pages": 0,
        "records": 0,
        "new": 0,
        "changed": 0,
        "unchanged": 0,
        "missing_id": 0,
        "resumed": state.checkpoint is not None,
        "window_start": start.isoformat() if start else None,
    }
    high = state.checkpoint_cursor if state.checkpoint else None
    source = build_source(scfg)
    try:
        for page in source.extract(entity, window, state.checkpoint):
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
                ctx.store.save_checkpoint(
                    conn,
                    source_name,
                    entity,
                    cursor=state.cursor,
                    checkpoint=page.checkpoint,
                    checkpoint_cursor=high,
                    run_id=ctx.run_id,
                )
            report["pages"] += 1
            report["records"] += len(page.records)
            report["new"] += counts.new
            report["changed"] += counts.changed
            report["unchanged"] += counts.unchanged
            ctx.emit("page", source=source_name, entity=entity, records=len(page.records))
    finally:
        source.close()
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
