"""Extract stage: pull one source entity into raw staging, page by page.

Pages are staged in batches, each in one transaction with the checkpoint that resumes after its last
page (``stage_pages``); the watermark advances only when the whole window was committed. The
window's end is fixed when the extract starts (the run's ``window_end``, else the moment the run
started) and kept with the checkpoint, so a resume pulls the same window. After the window, a source
that can count the entity (``CountingSource``) is asked what it holds in the same window and that
is compared with what was staged: a mismatch re-pulls the window once, then fails the entity naming
both numbers. Only then are the ids received kept for the window.
Records without an id are stored as rejects with their payload. Records an ``exclude`` of the
entity (or of the source itself, such as Tryton's company party) names are left out and
counted by reason; one staged before it was excluded is removed with its canonical row. Where the
window starts is one rule for the CLI and Airflow (``window_start``). A large entity can instead
be pulled in shards
(``concord.pipeline.shards``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from concord.contracts import (
    Checkpoint,
    CountingSource,
    EntityConfig,
    ExcludingSource,
    Exclusion,
    Page,
    RevisitingSource,
    Source,
    SourceConfig,
    Window,
    WindowCount,
    build_source,
)
from concord.errors import ConcordError, SourceError
from concord.hashing import record_digest
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.prefetch import prefetched
from concord.pipeline.reports import ExtractReport, PullCounts
from concord.redact import contains_secret
from concord.store import STAGING_CACHE_KIB, Reject, StagedRow
from concord.store import tables as t
from concord.utc import as_utc, parse_time, utcnow

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
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return (2, value)
    return (1, (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp())


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
    if "." not in path:  # a top-level field: no walk
        found = record.get(path)
        return None if found is None else str(found)
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


def derived_entities(scfg: SourceConfig, entity: str) -> list[str]:
    """The enabled entities of the source mapped from ``entity``'s pulled records too."""
    return [
        name for name, ecfg in scfg.entities.items() if ecfg.derived_from == entity and ecfg.enabled
    ]


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
    """Stage every page of the window, then check it against the source's own count.

    Returns the highest cursor seen (with ``high``). A count that disagrees re-pulls the window
    once from its start; if it still disagrees the entity fails (``SourceError`` naming both
    numbers) and its watermark stays where it was.
    """
    scfg = ctx.config.sources[source_name]
    source = build_source(scfg)
    try:
        excluder = Excluder.for_entity(source, entity, scfg.entities[entity])
        counting = isinstance(source, CountingSource) and source.counts(entity)
        # the ids of the pass, for the count check only: a million ids are 100 MiB
        received: set[str] | None = set() if counting else None

        def one_pass(start_at: str | None, high: str | None) -> str | None:
            if received is not None:
                received.clear()
            pages = prefetched(
                source.extract(entity, window, Checkpoint(start_at) if start_at else None),
                name=f"pull-{source_name}-{entity}",
            )
            return stage_pages(
                ctx, pages, source_name, entity, high, report, save_progress, excluder, received
            )

        high = one_pass(resume, high)
        if received is None or not isinstance(source, CountingSource):
            return high
        check = _count_check(ctx, source, source_name, entity, window, received, report)
        if check is None or check.agree:
            return high
        report.repulled = True
        ctx.emit("repull", source=source_name, entity=entity)
        high = one_pass(None, high)
        check = _count_check(ctx, source, source_name, entity, window, received, report)
        if check is not None and not check.agree:
            raise SourceError(
                f"entity '{entity}': the source holds {check.source} records in the window, "
                f"concord staged {check.staged} ({check.how}; {check.detail}) — still after "
                "pulling the window again; the watermark stays where it was",
                source=source_name,
            )
        return high
    finally:
        source.close()


class CountCheck:
    """The source's count of a window against what concord staged of it."""

    def __init__(self, source: int, staged: int, how: str, detail: str = "") -> None:
        self.source = source
        self.staged = staged
        self.how = how
        self.detail = detail

    @property
    def agree(self) -> bool:
        """Whether the two numbers agree."""
        return self.source == self.staged


def _staged_cursors(ctx: RunContext, source: str, entity: str, ids: list[str]) -> dict[str, Any]:
    raw = t.raw_records
    out: dict[str, Any] = {}
    with ctx.store.engine.connect() as conn:
        for i in range(0, len(ids), 900):
            out.update(
                conn.execute(
                    select(raw.c.source_id, raw.c.cursor).where(
                        raw.c.source == source,
                        raw.c.entity == entity,
                        raw.c.source_id.in_(ids[i : i + 900]),
                    )
                ).all()
            )
    return out


def _count_check(
    ctx: RunContext,
    source: CountingSource,
    source_name: str,
    entity: str,
    window: Window,
    received: set[str],
    report: PullCounts,
) -> CountCheck | None:
    """Ask the source what it holds in ``window`` and compare with what was staged of it.

    With an id listing: every id the source holds must have been received in this pass or be
    staged at the cursor the source gives (a resumed pass received only part of the window);
    ids received that the source no longer lists left the window during the pull (edited or
    deleted after they were read) and are counted apart. With a number only: the number of
    distinct records received in this pass.
    """
    counted: WindowCount | None = source.count(entity, window)
    if counted is None:
        return None
    if counted.ids is not None:
        listed = counted.ids
        unseen = [i for i in listed if i not in received]
        stored = _staged_cursors(ctx, source_name, entity, unseen) if unseen else {}
        missing = sorted(i for i in unseen if i not in stored or stored[i] != listed[i])
        left = len(received - set(listed))
        detail = f"{len(missing)} missing" + (f", e.g. {', '.join(missing[:5])}" if missing else "")
        check = CountCheck(len(listed), len(listed) - len(missing), counted.how, detail)
        report.left_window = left
    else:
        check = CountCheck(counted.total, len(received), counted.how, "counts differ")
    report.source_count = check.source
    report.staged_count = check.staged
    report.count_how = check.how
    report.count_check = "agree" if check.agree else "mismatch"
    return check


COMMIT_SECONDS = 5.0
"""A batch of pages is committed at least this often, however few records a slow source sends."""


@dataclass(slots=True)
class _Batch:
    """Pages received and not yet committed: their rows, rejects, exclusions and last checkpoint.

    A record read twice in one batch counts as its last sighting: staged (``rows``) or excluded
    (``dropped``), never both, as when each page committed on its own.
    """

    rows: dict[str, StagedRow] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    dropped: dict[str, None] = field(default_factory=dict)  # ordered, as they arrived
    token: str | None = None
    high: str | None = None
    pages: int = 0
    records: int = 0
    since: float = 0.0


def stage_pages(
    ctx: RunContext,
    pages: Iterable[Page],
    source_name: str,
    entity: str,
    high: str | None,
    report: PullCounts,
    save_progress: ProgressSaver,
    excluder: Excluder,
    received: set[str] | None,
) -> str | None:
    """Stage pages of ``entity``: a batch of pages in one transaction with its last checkpoint.

    The checkpoint is written by ``save_progress``. A batch ends at ``extract_commit_records``
    records or after ``COMMIT_SECONDS``. One commit per page rewrote every index page a page's
    random ids touched, a page at a time (on SQLite 22 s of a profiled 72 s medium extract). A crash
    loses at most the batch not committed, with its checkpoint: the rerun pulls it again. When the
    source fails mid-window the pages received before are committed first, so the resume starts
    after them.
    """
    ecfg = ctx.config.sources[source_name].entities[entity]
    mapping = ctx.mappings.get((source_name, entity))
    canonical = t.CANONICAL_TABLES.get(mapping.entity) if mapping is not None else None
    limit = ctx.config.extract_commit_records
    batch = _Batch()

    def commit() -> None:
        if not batch.pages:
            return
        with ctx.store.begin() as conn:
            ctx.store.widen_cache(conn, STAGING_CACHE_KIB)  # SQLite: a batch's index pages
            if ctx.store.dialect == "postgresql" and save_progress is not _no_progress:
                # No wait for the WAL flush: a batch and its checkpoint commit together, so a
                # batch a server crash loses is lost with its checkpoint and pulled again, and
                # the watermark's own (synchronous) commit flushes every batch before it.
                # Revisits and triggered reads keep no checkpoint: they commit synchronously.
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            if batch.dropped and canonical is not None:
                dropped = list(batch.dropped)
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
            rows = list(batch.rows.values())
            counts = ctx.store.stage(conn, source_name, entity, rows, ctx.run_id)
            for derived in derived_entities(ctx.config.sources[source_name], entity):
                ctx.store.stage(conn, source_name, derived, rows, ctx.run_id)  # no 2nd read
            ctx.store.add_rejects(conn, batch.rejects, run_id=ctx.run_id)
            save_progress(conn, batch.token, batch.high)
        report.pages += batch.pages
        report.records += batch.records
        report.new += counts.new
        report.changed += counts.changed
        report.unchanged += counts.unchanged
        batch.rows, batch.rejects, batch.dropped = {}, [], {}
        batch.pages = batch.records = 0

    iterator = iter(pages)
    while True:
        try:
            page = next(iterator)
        except StopIteration:
            break
        except ConcordError:
            commit()  # what arrived before the source failed is whole: keep it
            raise
        if not batch.pages:
            batch.since = time.monotonic()
        cursors: list[str] = []
        for record in page.records:
            payload = orjson.dumps(record)
            sid = ecfg.record_id(record) if isinstance(record, dict) else None
            if sid is None:
                report.missing_id += 1
                if received is not None:
                    received.add(f"\x00missing-id-{len(received)}")
                batch.rejects.append(
                    Reject(
                        stage="extract",
                        source=source_name,
                        entity=entity,
                        source_id=None,
                        field=ecfg.id_label,
                        reason=f"record has no '{ecfg.id_label}'",
                        payload=payload,
                    )
                )
                continue
            sid = str(sid)
            if received is not None:
                received.add(sid)
            why = excluder.reason(record) if excluder.rules else None
            if why is not None:
                report.excluded[why] = report.excluded.get(why, 0) + 1
                batch.dropped[sid] = None
                batch.rows.pop(sid, None)
                continue
            cursor = _cursor_value(record, ecfg.cursor_field)
            if cursor is not None:
                cursors.append(cursor)
            batch.rows[sid] = StagedRow(sid, payload, record_digest(record), cursor)
            batch.dropped.pop(sid, None)
        if cursors:  # the page's highest (the first of equals, as compared one by one)
            high = max_cursor(high, max(cursors, key=_cursor_key))
        batch.token = page.checkpoint.token if page.checkpoint else None
        refuse_secret_checkpoint(source_name, batch.token)
        batch.high = high
        batch.pages += 1
        batch.records += len(page.records)
        if batch.records >= limit or time.monotonic() - batch.since >= COMMIT_SECONDS:
            commit()
        ctx.emit("page", source=source_name, entity=entity, records=len(page.records))
    commit()
    return high


@dataclass(slots=True)
class PulledWindow:
    """An entity whose window is committed (watermark moved) and whose follow-ups are to run."""

    source: str
    entity: str
    started: datetime
    swept_at: datetime | None
    report: ExtractReport


def pull_window(ctx: RunContext, source_name: str, entity: str) -> PulledWindow:
    """Pull the entity's window page by page with its checkpoint, then move its watermark."""
    started = utcnow()
    ecfg = ctx.config.sources[source_name].entities[entity]
    state = ctx.store.watermark(source_name, entity)
    full = ctx.options.full_refresh or ecfg.full_refresh
    start = window_start(ctx.options.window_start, state.cursor, full_refresh=full)
    # The window's end is fixed when the pull starts and kept with its checkpoint: records
    # changed while it is pulled fall into the next window instead of shifting its pages.
    resumed_end = state.checkpoint_window_end if state.checkpoint else None
    end = resumed_end or ctx.options.window_end or ctx.started_at
    report = ExtractReport(
        resumed=state.checkpoint is not None,
        window_start=start.isoformat() if start else None,
        window_end=as_utc(end).isoformat() if end else None,
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
            window_end=end if checkpoint else None,
        )

    high = pull(
        ctx,
        source_name,
        entity,
        Window(start=start, end=end),
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
    return PulledWindow(source_name, entity, started, state.swept_at, report)


def finish_extract(ctx: RunContext, pulled: PulledWindow) -> ExtractReport:
    """After the window: the revisit set and triggered reads, a due sweep, the stage report.

    On PostgreSQL the raw table's statistics are refreshed when stale (``refresh_statistics``).
    """
    ecfg = ctx.config.sources[pulled.source].entities[pulled.entity]
    follow_up(ctx, pulled.source, pulled.entity, pulled.report)
    if sweep_due(ctx, ecfg, pulled.swept_at):
        pulled.report.swept = sweep(ctx, pulled.source, pulled.entity)
    ctx.store.refresh_statistics([t.raw_records, t.raw_state])  # the map's reads plan on them
    record_stage(ctx, "extract", f"{pulled.source}/{pulled.entity}", pulled.started, pulled.report)
    return pulled.report


def extract(ctx: RunContext, source_name: str, entity: str) -> ExtractReport:
    """Pull one source entity into raw staging, committing page by page with its checkpoint.

    The window first (``pull_window``), then its follow-ups (``finish_extract``); a concurrent
    run (``concord.pipeline.concurrent_extract``) calls the two apart.
    """
    return finish_extract(ctx, pull_window(ctx, source_name, entity))


def _no_progress(conn: Connection, checkpoint: str | None, high: str | None) -> None:
    """Revisits and triggered reads keep no checkpoint: they are whole on every run."""


def _reread(ctx: RunContext, pages: Iterable[Page], source_name: str, entity: str) -> PullCounts:
    """Stage a revisit or a triggered read: no checkpoint, no cursor, the configured excludes."""
    counts = PullCounts()
    exclude = ctx.config.sources[source_name].entities[entity].exclude
    stage_pages(
        ctx, pages, source_name, entity, None, counts, _no_progress, Excluder(list(exclude)), None
    )
    return counts


def _changed_this_run(ctx: RunContext, source: str, entity: str, path: str) -> list[str]:
    """Values at ``path`` of the entity's records staged (new or changed) by this run."""
    raw, state = t.raw_records, t.raw_state
    values: set[str] = set()
    parts = path.split(".")
    # this run's records through raw_state's run index, their payloads by key
    with ctx.store.engine.connect() as conn:
        rows = conn.execute(
            select(raw.c.payload)
            .select_from(state.join(raw, t.RAW_WITH_STATE))
            .where(state.c.source == source, state.c.entity == entity, state.c.run_id == ctx.run_id)
        ).scalars()
        for payload in rows:
            value: Any = orjson.loads(payload)
            for part in parts:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, dict):
                value = value.get("id")
            if value not in (None, "") and not isinstance(value, list | dict):
                values.add(str(value))
    return sorted(values)


def _pulled_whole(ctx: RunContext, source: str, entity: str) -> bool:
    """Whether this run already pulled the whole entity (a first sync or a full refresh).

    Every record of it was then read after the run began, later than any change in the
    children's windows, so a trigger need not read its parents again (on a first night that
    would read most parents twice).
    """
    sr = t.stage_reports
    with ctx.store.engine.connect() as conn:
        report = conn.execute(
            select(sr.c.report).where(
                sr.c.run_id == ctx.run_id,
                sr.c.stage == "extract",
                sr.c.scope == f"{source}/{entity}",
                sr.c.status == "succeeded",
            )
        ).scalar_one_or_none()
    return isinstance(report, dict) and report.get("window_start", "") is None


def follow_up(ctx: RunContext, source_name: str, entity: str, report: ExtractReport) -> None:
    """After the window: re-read the entity's revisit set, then the parents its changes name.

    Both are staged like any page (unchanged records stay unchanged by their hash); neither
    moves a watermark. Derived values an ERP changes without touching the record's cursor
    (Tryton: an invoice's amount to pay when a payment posts) arrive this way.
    """
    scfg = ctx.config.sources[source_name]
    source = build_source(scfg)
    try:
        if not isinstance(source, RevisitingSource):
            return
        counts = _reread(ctx, source.revisit(entity), source_name, entity)
        report.revisited = counts.records
        report.revisit_changed = counts.new + counts.changed
        for trigger in source.triggers(entity):
            parent = scfg.entities.get(trigger.parent)
            if parent is None or not parent.enabled:
                continue
            if _pulled_whole(ctx, source_name, trigger.parent):
                continue
            ids = _changed_this_run(ctx, source_name, entity, trigger.path)
            if not ids:
                continue
            counts = _reread(ctx, source.read(trigger.parent, ids), source_name, trigger.parent)
            report.triggered[trigger.parent] = counts.records
            report.trigger_changed += counts.new + counts.changed
    finally:
        source.close()


# A sweep that would tombstone more than this share of an entity's staged records (and more
# than SWEEP_GUARD_MIN of them) is refused: an empty or narrowed listing is far likelier than
# the ERP losing most of its records overnight.
SWEEP_GUARD_SHARE = 0.5
SWEEP_GUARD_MIN = 10


def sweep_due(ctx: RunContext, ecfg: EntityConfig, swept_at: datetime | None) -> bool:
    """Whether this run sweeps the entity: ``--sweep``, ``every_run``, or its cron has fired."""
    if ctx.options.sweep or ecfg.sweep == "every_run":
        return True
    if ecfg.sweep == "on_demand":
        return False
    from croniter import croniter  # type: ignore[import-untyped]

    since = as_utc(swept_at) if swept_at else datetime(1970, 1, 1, tzinfo=UTC)
    fired: datetime = croniter(ecfg.sweep, since).get_next(datetime)
    return as_utc(fired) <= as_utc(ctx.started_at)


def sweep(ctx: RunContext, source_name: str, entity: str) -> dict[str, int]:
    """List every id the source holds for the entity; staged ids it no longer lists are deleted.

    Needs a source that lists ids (``CountingSource`` answering with ``ids``: the tryton
    profile's ``count: {style: ids}``). The vanished records become tombstones
    (``Store.tombstone``): the canonical row says ``state: deleted``, the 360 leaves it out.
    """
    scfg = ctx.config.sources[source_name]
    ecfg = scfg.entities[entity]
    mapping = ctx.mappings.get((source_name, entity))
    canonical = t.CANONICAL_TABLES.get(mapping.entity) if mapping is not None else None
    source = build_source(scfg)
    try:
        listed = (
            source.count(entity, Window(None, None)) if isinstance(source, CountingSource) else None
        )
    finally:
        source.close()
    if listed is None or listed.ids is None:
        raise SourceError(
            f"entity '{entity}' cannot be swept: the source lists no ids (configure a count "
            "that lists ids, e.g. count: {style: ids})",
            source=source_name,
        )
    ids = set(listed.ids)
    raw = t.raw_records
    with ctx.store.engine.connect() as conn:
        live = {
            str(sid)
            for sid in conn.execute(
                select(raw.c.source_id).where(
                    raw.c.source == source_name,
                    raw.c.entity == entity,
                    raw.c.deleted_at.is_(None),
                )
            ).scalars()
        }
    vanish = len(live - ids)
    if vanish > SWEEP_GUARD_MIN and vanish > SWEEP_GUARD_SHARE * len(live):
        raise SourceError(
            f"entity '{entity}': the sweep lists {len(ids)} ids and would delete {vanish} of "
            f"{len(live)} staged records; refused (is the listing narrowed?)",
            source=source_name,
        )
    with ctx.store.begin() as conn:
        gone = ctx.store.tombstone(
            conn, source_name, entity, ids, canonical, ecfg.id_prefix, ctx.run_id
        )
        ctx.store.mark_swept(conn, source_name, entity, utcnow())
    ctx.emit("swept", source=source_name, entity=entity, tombstoned=gone)
    return {"listed": len(ids), "tombstoned": gone}
