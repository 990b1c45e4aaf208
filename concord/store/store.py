"""``Store``: the engine plus the bulk operations each pipeline stage needs.

Writes go through SQLAlchemy Core with executemany and ``INSERT .. ON CONFLICT`` (SQLite and
PostgreSQL dialects), never row-by-row ORM flushes. Callers pass an open connection for writes so a
stage commits its rows and its watermark or checkpoint in one transaction: a crash loses nothing
that was not committed and repeats nothing that was.
"""

from __future__ import annotations

import operator
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Table,
    create_engine,
    delete,
    event,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.schema import CreateTable

from concord.errors import LockBusy, StoreError
from concord.store import tables as t
from concord.store.counts import PENDING_INDEX_SQLITE, pending_count
from concord.store.rejects import Reject
from concord.store.types import MoneyType, UtcDateTime, money_param, sqlite_utc_param, utc_param
from concord.utc import utcnow

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class StagedRow(NamedTuple):
    """One raw record as pulled: its id in the source, the payload bytes, hash and cursor.

    A named tuple, not a frozen dataclass: built once per pulled record, it is made in a third
    of the time.
    """

    source_id: str
    payload: bytes
    hash: str
    cursor: str | None


@dataclass(frozen=True, slots=True)
class WatermarkState:
    """Where an entity's extract stands: committed cursor, checkpoint of a pull in progress."""

    cursor: str | None
    checkpoint: str | None
    checkpoint_cursor: str | None
    checkpoint_window_end: datetime | None = None
    swept_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StageCounts:
    """How many staged records were new, changed or unchanged."""

    new: int
    changed: int
    unchanged: int


def _json_dumps(value: Any) -> str:
    """JSON columns through orjson (several times faster than the stdlib on canonical rows)."""
    return orjson.dumps(value, default=str).decode()


def _owner_is_dead(owner: str) -> bool:
    """True when a lock owner 'host:pid' ran on this host and that process no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# SQLite's WAL checkpoint interval, and the page cache of a connection that bulk-writes
# (``Store.widen_cache``). The defaults (1000 pages, 2 MiB) made a medium first night's staging
# spend most of its time checkpointing every 4 MiB of WAL and re-reading evicted index pages
# (issue 19: 51 s against 37 s with these, same pull). The checkpoint now copies each page's
# last version once per 40 MiB of WAL; the cache is allocated as it is used, and only the
# staging and map writers get a big one (every connection with it raised a medium run's peak
# memory by a sixth). The map writes on one connection: 64 MiB. The extract's threads commit
# 10,000-record batches on every connection of the pool in turn, each filling its own cache:
# at 64 MiB apiece a full-scale extract peaked at 1,250 MiB, at 16 MiB at 686 MiB and no
# slower (117.6 s against 126.8 s; a medium one 16.0-16.1 s against 16.1-16.8 s).
BULK_CACHE_KIB = 65_536
STAGING_CACHE_KIB = 16_384
# PRAGMA takes no bound parameter: one fixed statement per size
_CACHE_PRAGMAS = {
    BULK_CACHE_KIB: "PRAGMA cache_size=-65536",
    STAGING_CACHE_KIB: "PRAGMA cache_size=-16384",
}
_CHECKPOINT_PRAGMA = "PRAGMA wal_autocheckpoint=10000"  # pages: 40 MiB


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute(_CHECKPOINT_PRAGMA)
    cur.close()


# ``stage``: the columns of a raw record as written, and those the same for the whole page
_STAGE_COLUMNS = (
    "source",
    "entity",
    "source_id",
    "payload",
    "hash",
    "cursor",
    "deleted_at",
    "run_id",
    "extracted_at",
)
# ... and of its map state (``raw_state``): a staged payload is pending; an upsert keeps the
# fingerprint of the mapping that last mapped the record
_STATE_COLUMNS = ("source", "entity", "source_id", "hash", "pending", "run_id")
_STATE_KEYS = ("source", "entity", "source_id")
_KNOWN_SQLITE = (
    "SELECT source_id, hash, deleted_at FROM raw_records "
    "WHERE source = ? AND entity = ? AND source_id IN "
)
_STAGE_FIXED = ("source", "entity", "deleted_at", "run_id", "extracted_at")

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def _execute_composed(conn: Connection, statement: Any) -> None:
    """Run a psycopg ``sql.Composed`` statement (identifiers quoted by psycopg) on ``conn``."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


# ``mark_mapped``: one statement per record through the driver on SQLite (no SQL to compile per
# batch), one statement per 5000 records on PostgreSQL (the pairs as two arrays); both update the
# narrow ``raw_state`` row, never the raw record with its payload
_MARK_MAPPED_SQLITE = (
    "UPDATE raw_state SET pending = 0, mapped_fp = ? "
    "WHERE source = ? AND entity = ? AND source_id = ? AND hash = ?"
)
_MARK_MAPPED_PG = text(
    "UPDATE raw_state SET pending = false, mapped_fp = :fp "
    "WHERE source = :source AND entity = :entity AND (source_id, hash) IN "
    "(SELECT * FROM unnest(CAST(:ids AS varchar[]), CAST(:hashes AS varchar[])))"
)
# ``pending_batches``: the ids of pending records through the partial index (``WHERE pending``,
# written as the index is), then their payloads by key: two plans no table statistics can spoil
# (a join of the two, on fresh PostgreSQL tables, scanned one per row). SQLite is told the index
# (``INDEXED BY``): without statistics it walked the primary key over every staged record of the
# entity for each batch, mapped or not (a night's few pending records: a whole-entity scan each).
_PENDING_SQL = (
    "SELECT source_id FROM {table} WHERE source = {p} AND entity = {p} AND pending "
    "AND source_id > {p} ORDER BY source_id LIMIT {p}"
)
_PAYLOADS_SQLITE = (
    "SELECT source_id, payload, hash FROM raw_records "
    "WHERE source = ? AND entity = ? AND source_id IN "
)
_PAYLOADS_PG = (
    "SELECT source_id, payload, hash FROM raw_records "
    "WHERE source = %s AND entity = %s AND source_id = ANY(%s)"
)


def check_store_url(url: str) -> URL:
    """The parsed store URL, or ``StoreError`` saying what concord supports instead.

    concord keeps its store in SQLite (a file) or PostgreSQL; any other database, or a URL that
    does not parse, is refused before a driver is looked for.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"store_url {url!r} is not a database URL; use sqlite:///path/to/concord.db "
            "or postgresql://user@host/db"
        ) from None
    if parsed.get_backend_name() not in SUPPORTED_DIALECTS:
        raise StoreError(
            f"store_url {parsed.render_as_string(hide_password=True)!r}: "
            f"{parsed.get_backend_name()} is not supported; concord's store is SQLite "
            "(sqlite:///path/to/concord.db) or PostgreSQL (postgresql://user@host/db)"
        )
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL (None for in-memory databases and other dialects)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def keep_newest(conn: Connection, table: Table, keep: int) -> None:
    """Delete all but the ``keep`` newest rows of a table numbered by an ``id`` column."""
    oldest_kept = select(table.c.id).order_by(table.c.id.desc()).offset(keep).scalar_subquery()
    conn.execute(table.delete().where(table.c.id <= oldest_kept))


def driver_processors(
    dialect: Dialect, table: Table, columns: Sequence[str]
) -> list[Callable[[Any], Any] | None]:
    """``Store.driver_processors`` for a dialect alone (a map worker process has no store)."""
    out: list[Callable[[Any], Any] | None] = []
    for name in columns:
        col_type = table.c[name].type
        if isinstance(col_type, MoneyType):
            out.append(money_param)
        elif isinstance(col_type, UtcDateTime):
            out.append(sqlite_utc_param if dialect.name == "sqlite" else utc_param)
        else:
            out.append(col_type.dialect_impl(dialect).bind_processor(dialect))
    return out


class Store:
    """A concord store at a SQLAlchemy URL (SQLite file by default, PostgreSQL in production).

    A SQLite store's folder must exist: a mistyped path is an error, not a new empty store in
    new folders. ``create=False`` (the commands that only read) also needs the file itself.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        parsed = check_store_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        path = sqlite_file(parsed)
        if path is not None and not path.parent.is_dir():
            raise StoreError(
                f"store folder {path.parent} does not exist (store_url {url}); "
                "create it or correct store_url"
            )
        if path is not None and not create and not path.is_file():
            raise StoreError(
                f"no store at {path} (store_url {url}): run `concord sync` or `make demo` first"
            )
        self.engine: Engine = create_engine(
            parsed,
            future=True,
            pool_pre_ping=True,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._analyze_lock = threading.Lock()
        self._sql_cache: dict[
            tuple[str, tuple[str, ...], tuple[str, ...]], tuple[str, list[int]]
        ] = {}

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Open the store and bring its schema to the newest migration.

        ``create=False`` refuses a SQLite file that does not exist yet (read-only commands).
        """
        store = cls(url, create=create)
        store.migrate()
        return store

    def migrate(self) -> None:
        """Run Alembic migrations up to head (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["concord_engine"] = self.engine
        try:
            command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreError(f"cannot migrate store {self.safe_url}: {exc.orig}") from exc

    @property
    def safe_url(self) -> str:
        """The store URL with any password hidden, for messages."""
        return self.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()

    def widen_cache(self, conn: Connection, kib: int = BULK_CACHE_KIB) -> None:
        """SQLite: give the connection a page cache of ``kib`` KiB (bulk writers; see above).

        ``kib`` is ``BULK_CACHE_KIB`` or ``STAGING_CACHE_KIB``. The connection keeps it in the
        pool until ``release_idle`` closes it. PostgreSQL: its cache is the server's.
        """
        if kib not in _CACHE_PRAGMAS:
            raise ValueError(f"no page cache of {kib} KiB: use BULK_CACHE_KIB or STAGING_CACHE_KIB")
        if self.dialect == "sqlite":
            conn.exec_driver_sql(_CACHE_PRAGMAS[kib])

    def release_idle(self) -> None:
        """SQLite: close the pooled connections, and with them their page caches.

        A stage that ran on several connections (the concurrent extract's threads) leaves each
        in the pool holding up to its cache (``widen_cache``) the next stage, on one
        connection, never reads; kept, they added up to a quarter of a medium run's peak memory.
        A connection in use is closed when it is returned. PostgreSQL keeps its pool; so does
        an in-memory SQLite store (its one connection is the database).
        """
        if sqlite_file(self.url) is not None:
            self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: commits on success, rolls back on any error."""
        with self.engine.begin() as conn:
            yield conn

    # -- generic upsert ---------------------------------------------------------------------

    def upsert(
        self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
    ) -> None:
        """Insert rows, replacing non-key columns where the key already exists (executemany)."""
        if not rows:
            return
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(table)
        cols = [c for c in rows[0] if c not in keys]
        if cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(stmt, list(rows))

    def driver_processors(
        self, table: Table, columns: Sequence[str]
    ) -> list[Callable[[Any], Any] | None]:
        """Per column, what SQLAlchemy would do to a Python value before the driver gets it.

        ``upsert_rows`` takes values already in the driver's form, so a caller converts each
        value once with these (money to integer millionths, UTC datetimes to naive, SQLite's
        datetime text) and the rows skip SQLAlchemy's per-row statement and bind processing.
        """
        return driver_processors(self.engine.dialect, table, columns)

    def upsert_rows(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        keys: Sequence[str],
        *,
        unique: bool = False,
    ) -> None:
        """``upsert`` of rows in the driver's form (``driver_processors``), through the driver.

        SQLite: one ``executemany`` of the ``INSERT .. ON CONFLICT DO UPDATE`` SQLAlchemy
        compiles once. PostgreSQL: ``COPY`` into a temporary table of the same columns, then one
        ``INSERT .. SELECT .. ON CONFLICT``. Both in the caller's transaction; within ``rows``
        the last row of a key wins (``unique``: the caller knows no key repeats, nothing to
        pick). JSON columns take JSON text.
        """
        if not rows:
            return
        latest: Sequence[Sequence[Any]] = rows
        if not unique:
            key = operator.itemgetter(*[list(columns).index(k) for k in keys])
            latest = list({key(r): r for r in rows}.values())
        if self.dialect == "postgresql":
            self._copy_upsert(conn, table, columns, latest, keys)
            return
        sql, order = self._compiled_upsert(table, tuple(columns), tuple(keys))
        if order == list(range(len(columns))):
            params: list[Sequence[Any]] = [tuple(r) for r in latest]
        elif len(order) == 1:  # an itemgetter of one index gives the value, not a tuple
            params = [(r[order[0]],) for r in latest]
        else:
            params = list(map(operator.itemgetter(*order), latest))
        conn.exec_driver_sql(sql, params)

    def _compiled_upsert(
        self, table: Table, columns: tuple[str, ...], keys: tuple[str, ...]
    ) -> tuple[str, list[int]]:
        cache_key = (table.name, columns, keys)
        found = self._sql_cache.get(cache_key)
        if found is None:
            stmt = sqlite.insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={c: stmt.excluded[c] for c in columns if c not in keys},
            )
            compiled = stmt.compile(dialect=self.engine.dialect, column_keys=list(columns))
            order = [columns.index(name) for name in compiled.positiontup or ()]
            found = (str(compiled), order)
            self._sql_cache[cache_key] = found
        return found

    def _copy_upsert(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        keys: Sequence[str],
        *,
        only_if: ColumnElement[bool] | None = None,
    ) -> list[tuple[Any, ...]]:
        """``COPY`` the rows into a temporary table, then one ``INSERT .. SELECT .. ON CONFLICT``.

        With ``only_if`` (over the table's stored row and ``excluded``), a row whose key exists is
        updated only where it holds; the result gives, per row written, its keys and whether it
        was new (``(*keys, new)``).
        """
        from psycopg import sql as pgsql

        scratch = Table(
            f"concord_copy_{table.name}",
            MetaData(),
            *[Column(c, table.c[c].type) for c in columns],
            prefixes=["TEMPORARY"],
        )
        conn.execute(CreateTable(scratch, if_not_exists=True))
        copy_stmt = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            pgsql.Identifier(scratch.name), pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
        )
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(copy_stmt) as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        stmt = postgresql.insert(table).from_select(
            list(columns), select(*[scratch.c[c] for c in columns])
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={c: stmt.excluded[c] for c in columns if c not in keys},
            where=only_if,
        )
        written: list[tuple[Any, ...]] = []
        if only_if is None:
            conn.execute(stmt)
        else:
            # a row PostgreSQL inserted has no xmax; one it updated carries the conflict's lock
            new = literal_column(f"{table.name}.xmax = 0", Boolean)
            returned = stmt.returning(*[table.c[k] for k in keys], new)
            written = [tuple(r) for r in conn.execute(returned)]
        # TRUNCATE, not DELETE: no autovacuum reaches a temporary table, so deleted rows would
        # pile up in it and every later INSERT .. SELECT would scan them all (quadratic).
        _execute_composed(conn, pgsql.SQL("TRUNCATE {}").format(pgsql.Identifier(scratch.name)))
        return written

    # -- runs and the run lock --------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        trigger: str,
        window_start: datetime | None,
        window_end: datetime | None,
    ) -> None:
        """Register a run as running (a rerun of the same run id reuses its row)."""
        with self.begin() as conn:
            self.upsert(
                conn,
                t.runs,
                [
                    {
                        "run_id": run_id,
                        "started_at": utcnow(),
                        "finished_at": None,
                        "status": "running",
                        "trigger": trigger,
                        "window_start": window_start,
                        "window_end": window_end,
                        "report": {},
                    }
                ],
                ["run_id"],
            )

    def save_run_report(
        self, run_id: str, report: dict[str, Any], *, status: str | None = None
    ) -> None:
        """Store a run's report; a final ``status`` also sets the finish time."""
        values: dict[str, Any] = {"report": report}
        if status is not None:
            values["status"] = status
            if status != "running":
                values["finished_at"] = utcnow()
        with self.begin() as conn:
            conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(**values))

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run's row, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).mappings().first()
        return dict(row) if row else None

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The most recent runs, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.runs).order_by(t.runs.c.started_at.desc()).limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def acquire_lock(
        self, name: str, run_id: str, *, stale_after: timedelta, owner: str | None = None
    ) -> None:
        """Take the named lock for ``run_id`` or raise ``LockBusy`` naming the run that holds it.

        Taking a lock ``run_id`` already holds renews it (an Airflow run's tasks each take the
        lock its first task took). A lock is broken when its heartbeat is older than
        ``stale_after``, or at once when its owner is a process of this host that is gone (a
        sync killed with kill -9). ``owner`` says who holds it, by default ``host:pid``.
        """
        owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        now = utcnow()
        with self.begin() as conn:
            conn.execute(
                delete(t.locks).where(
                    t.locks.c.name == name, t.locks.c.heartbeat_at < now - stale_after
                )
            )
            held = conn.execute(
                select(t.locks.c.owner, t.locks.c.run_id).where(t.locks.c.name == name)
            ).first()
            if held is not None and held.run_id == run_id:
                conn.execute(
                    update(t.locks)
                    .where(t.locks.c.name == name)
                    .values(owner=owner, heartbeat_at=now)
                )
                return
            if held is not None and _owner_is_dead(held.owner):
                conn.execute(delete(t.locks).where(t.locks.c.name == name))
        try:
            with self.begin() as conn:
                conn.execute(
                    t.locks.insert().values(
                        name=name, owner=owner, run_id=run_id, acquired_at=now, heartbeat_at=now
                    )
                )
        except IntegrityError:
            row = self.lock_holder(name)
            holder = (
                f"{row['owner']} (run {row['run_id']}, "
                f"since {row['acquired_at']:%Y-%m-%d %H:%M:%S}Z)"
                if row
                else "another run"
            )
            raise LockBusy(
                f"another sync holds the '{name}' lock: {holder}",
                run_id=row["run_id"] if row else None,
            ) from None

    def lock_holder(self, name: str) -> dict[str, Any] | None:
        """The row of the named lock (owner, run_id, acquired_at, heartbeat_at), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.locks).where(t.locks.c.name == name)).mappings().first()
        return dict(row) if row else None

    def heartbeat_lock(self, name: str, run_id: str) -> bool:
        """Renew a held lock so other runs see it is alive; False when ``run_id`` lost it."""
        with self.begin() as conn:
            renewed = conn.execute(
                update(t.locks)
                .where(t.locks.c.name == name, t.locks.c.run_id == run_id)
                .values(heartbeat_at=utcnow())
            )
        return bool(renewed.rowcount)

    def release_lock(self, name: str, run_id: str) -> None:
        """Release a lock this run holds (nothing happens when another run holds it)."""
        with self.begin() as conn:
            conn.execute(delete(t.locks).where(t.locks.c.name == name, t.locks.c.run_id == run_id))

    def expand_concord_id(self, short: str) -> str:
        """The full concord id a shortened one (``cc_1a2b3c4d``) stands for, else ``short``.

        Tables show ids shortened; every command takes the short form back. An ambiguous or
        unknown prefix is returned as given (the caller's lookup then reports it).
        """
        if not short.startswith("cc_") or not short[3:].isalnum():
            return short
        g = t.golden
        with self.engine.connect() as conn:
            found = list(
                conn.execute(
                    select(g.c.concord_id).where(g.c.concord_id.startswith(short)).limit(2)
                ).scalars()
            )
        return str(found[0]) if len(found) == 1 else short

    # -- watermarks ---------------------------------------------------------------------------

    def watermark(self, source: str, entity: str) -> WatermarkState:
        """Where an entity's extract stands (all None when never pulled)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(t.watermarks).where(
                        t.watermarks.c.source == source, t.watermarks.c.entity == entity
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return WatermarkState(None, None, None)
        return WatermarkState(
            row["cursor"],
            row["checkpoint"],
            row["checkpoint_cursor"],
            row["window_end"],
            row["swept_at"],
        )

    def mark_swept(self, conn: Connection, source: str, entity: str, when: datetime) -> None:
        """Remember when the entity's ids were last swept (its watermark row exists)."""
        wm = t.watermarks
        conn.execute(
            update(wm).where(wm.c.source == source, wm.c.entity == entity).values(swept_at=when)
        )

    def save_checkpoint(
        self,
        conn: Connection,
        source: str,
        entity: str,
        *,
        cursor: str | None,
        checkpoint: str | None,
        checkpoint_cursor: str | None,
        run_id: str,
        window_end: datetime | None = None,
    ) -> None:
        """Record progress inside an extract; call in the transaction that staged the page.

        ``window_end`` is the fixed end of the window the checkpoint is inside (a resume pulls
        the same window).
        """
        self.upsert(
            conn,
            t.watermarks,
            [
                {
                    "source": source,
                    "entity": entity,
                    "cursor": cursor,
                    "checkpoint": checkpoint,
                    "checkpoint_cursor": checkpoint_cursor,
                    "window_end": window_end,
                    "run_id": run_id,
                    "updated_at": utcnow(),
                }
            ],
            ["source", "entity"],
        )

    # -- raw staging ----------------------------------------------------------------------------

    def stage(
        self, conn: Connection, source: str, entity: str, rows: Sequence[StagedRow], run_id: str
    ) -> StageCounts:
        """Upsert raw records; only new or changed payloads are written and marked pending.

        A record whose stored hash is the same is left alone (a tombstone that comes back counts
        as changed). SQLite looks the stored hashes up first; PostgreSQL's ``INSERT .. ON
        CONFLICT DO UPDATE .. WHERE`` decides per row through the primary key, whatever the
        planner knows of the table. A written payload's ``raw_state`` row is set pending with
        its hash and this run, in the same transaction (and keeps the fingerprint of the
        mapping that last mapped it).
        """
        if not rows:
            return StageCounts(0, 0, 0)
        # last wins within a batch; in key order, each index page is visited once and in order
        latest: dict[str, StagedRow] = {
            r.source_id: r for r in sorted(rows, key=operator.attrgetter("source_id"))
        }
        raw = t.raw_records
        # PostgreSQL looks nothing up: its upsert skips unchanged rows itself. A lookup by
        # ``source_id = ANY(ids)`` was planned on ix_raw_pending while raw_records had no
        # statistics (never analyzed: autovacuum off, or a first sync faster than it), which
        # compared every staged record of the entity with each id: each page slower than the last.
        known = (
            None
            if self.dialect == "postgresql"
            else self._known_sqlite(conn, source, entity, latest)
        )
        # through the driver (``upsert_rows``): the constant columns converted once, the
        # per-record ones (text and bytes) need no conversion
        processors = self.driver_processors(raw, _STAGE_FIXED)
        src, ent, gone, run, now = (
            p(v) if p is not None and v is not None else v
            for p, v in zip(processors, (source, entity, None, run_id, utcnow()), strict=True)
        )
        writes = [
            (src, ent, r.source_id, r.payload, r.hash, r.cursor, gone, run, now)
            for r in latest.values()
            if known is None or known.get(r.source_id) != r.hash
        ]
        if known is None:
            # written only where the stored hash differs or the stored record is a tombstone
            differs = or_(
                raw.c.hash != postgresql.insert(raw).excluded.hash, raw.c.deleted_at.isnot(None)
            )
            written = self._copy_upsert(
                conn, raw, _STAGE_COLUMNS, writes, _STATE_KEYS, only_if=differs
            )
            ids = {w[2] for w in written}
            changed = [r for r in latest.values() if r.source_id in ids]
            new = sum(1 for w in written if w[-1])
        else:
            self.upsert_rows(conn, raw, _STAGE_COLUMNS, writes, _STATE_KEYS)
            changed = [r for r in latest.values() if known.get(r.source_id) != r.hash]
            new = sum(1 for sid in latest if sid not in known)
        (pending,) = (
            p(True) if p is not None else True
            for p in self.driver_processors(t.raw_state, ("pending",))
        )
        states = [(src, ent, r.source_id, r.hash, pending, run) for r in changed]
        self.upsert_rows(conn, t.raw_state, _STATE_COLUMNS, states, _STATE_KEYS)
        return StageCounts(
            new=new, changed=len(changed) - new, unchanged=len(latest) - len(changed)
        )

    def _known_sqlite(
        self, conn: Connection, source: str, entity: str, latest: dict[str, StagedRow]
    ) -> dict[str, str]:
        """The stored hash of each of ``latest``'s ids that is staged ('' for a tombstone)."""
        known: dict[str, str] = {}
        ids = list(latest)
        for i in range(0, len(ids), 900):
            # through the driver: SQLAlchemy would compile an IN of up to 900 values per call
            chunk = ids[i : i + 900]
            sql = _KNOWN_SQLITE + "(" + ",".join("?" * len(chunk)) + ")"
            for sid, digest, deleted in conn.exec_driver_sql(sql, (source, entity, *chunk)):
                known[sid] = digest if deleted is None else ""  # a tombstone back: changed
        return known

    def tombstone(
        self,
        conn: Connection,
        source: str,
        entity: str,
        listed: set[str],
        canonical: Table | None,
        prefix: str,
        run_id: str,
    ) -> int:
        """Mark staged records the source no longer lists as deleted (tombstones); how many.

        The raw record keeps its payload with ``deleted_at`` set; its canonical row keeps its
        data with ``state = 'deleted'``. A record that comes back is staged again as changed.
        """
        raw = t.raw_records
        live = conn.execute(
            select(raw.c.source_id).where(
                raw.c.source == source, raw.c.entity == entity, raw.c.deleted_at.is_(None)
            )
        ).scalars()
        gone = sorted(str(sid) for sid in live if str(sid) not in listed)
        now = utcnow()
        for i in range(0, len(gone), 900):
            chunk = gone[i : i + 900]
            conn.execute(
                update(raw)
                .where(raw.c.source == source, raw.c.entity == entity, raw.c.source_id.in_(chunk))
                .values(deleted_at=now)
            )
            if canonical is not None:
                conn.execute(
                    update(canonical)
                    .where(
                        canonical.c.source == source,
                        canonical.c.source_id.in_([f"{prefix}{sid}" for sid in chunk]),
                    )
                    .values(state="deleted", run_id=run_id)
                )
        return len(gone)

    def drop_records(
        self,
        conn: Connection,
        source: str,
        entity: str,
        ids: Sequence[str],
        canonical: Table,
        canonical_ids: Sequence[str],
    ) -> None:
        """Remove staged records (their map state, canonical rows) that are now excluded."""
        for raw in (t.raw_records, t.raw_state):
            for i in range(0, len(ids), 900):
                conn.execute(
                    raw.delete().where(
                        raw.c.source == source,
                        raw.c.entity == entity,
                        raw.c.source_id.in_(ids[i : i + 900]),
                    )
                )
        for i in range(0, len(canonical_ids), 900):
            conn.execute(
                canonical.delete().where(
                    canonical.c.source == source,
                    canonical.c.source_id.in_(canonical_ids[i : i + 900]),
                )
            )

    def pending_batches(
        self, source: str, entity: str, batch_size: int
    ) -> Iterator[list[tuple[str, bytes, str]]]:
        """Yield (source_id, payload, hash) of unmapped raw records, keyset-paged by id."""
        pg = self.dialect == "postgresql"
        sql = _PENDING_SQL.format(
            p="%s" if pg else "?", table="raw_state" if pg else PENDING_INDEX_SQLITE
        )
        step = max(batch_size, 1) if pg else 900  # SQLite: at most 900 values in an IN
        after = ""
        while True:
            found: dict[str, tuple[bytes, str]] = {}
            with self.engine.connect() as conn:
                listed = conn.exec_driver_sql(sql, (source, entity, after, batch_size))
                ids = [str(sid) for (sid,) in listed]
                for i in range(0, len(ids), step):
                    chunk = ids[i : i + step]
                    if pg:
                        rows = conn.exec_driver_sql(_PAYLOADS_PG, (source, entity, chunk))
                    else:
                        query = _PAYLOADS_SQLITE + "(" + ",".join("?" * len(chunk)) + ")"
                        rows = conn.exec_driver_sql(query, (source, entity, *chunk))
                    for sid, payload, digest in rows:
                        found[str(sid)] = (bytes(payload), str(digest))
            if not ids:
                return
            # a state row always has its raw record (the two are written and deleted together)
            yield [(sid, *found[sid]) for sid in ids if sid in found]
            after = ids[-1]

    def pending_count(self, source: str, entity: str) -> int:
        """How many of the entity's staged records wait for the map stage."""
        with self.engine.connect() as conn:
            return pending_count(conn, source, entity)

    def mark_mapped(
        self,
        conn: Connection,
        source: str,
        entity: str,
        done: Iterable[tuple[str, str]],
        mapping_fp: str | None = None,
    ) -> None:
        """Clear ``pending`` for (source_id, hash) pairs, unless the payload changed meanwhile.

        Only the narrow ``raw_state`` rows are written, never the raw records with their
        payloads (issue 19).

        ``mapping_fp`` is remembered as the fingerprint of the mapping that mapped them, so a
        changed mapping finds them again (``mark_for_replay``).
        """
        pairs = list(done)
        if not pairs:
            return
        if self.dialect == "postgresql":
            for i in range(0, len(pairs), 5000):
                chunk = pairs[i : i + 5000]
                conn.execute(
                    _MARK_MAPPED_PG,
                    {
                        "fp": mapping_fp,
                        "source": source,
                        "entity": entity,
                        "ids": [sid for sid, _h in chunk],
                        "hashes": [h for _sid, h in chunk],
                    },
                )
            return
        conn.exec_driver_sql(
            _MARK_MAPPED_SQLITE, [(mapping_fp, source, entity, sid, h) for sid, h in pairs]
        )

    def refresh_statistics(self, tables: Sequence[Table]) -> list[str]:
        """PostgreSQL: ``ANALYZE`` the tables whose planner statistics are missing or stale.

        Without statistics (a first night: the tables were filled minutes ago; autovacuum may be
        off, and even on it looks only once a minute) the planner takes ``source = .. AND
        entity = ..`` for a handful of rows and reads a whole entity for every page or batch of
        keys (issue 19: the staging lookup, the map's reads and ``mark_mapped`` and reconcile
        went quadratic). Stale is: never analyzed, grown by more than 50 + 10% of the rows it
        had then, or more than 50 + 10% of its rows changed since (autovacuum's own analyze
        threshold). Changes count: statistics taken while every staged record was pending had
        the planner estimate ``NOT pending`` at one row after the map stage cleared it, and
        nested-loop every canonical count of the gates and reconcile (0.24 s an entity on a
        medium store). A quiet night changes too few rows to analyze a staging or canonical
        table; the 360's daily rows, rewritten nightly, are analyzed in a few milliseconds. One
        caller at a time (entities finishing side by side: the second sees fresh statistics
        and skips). SQLite plans from its indexes alone. Returns the tables analyzed.
        """
        if self.dialect != "postgresql":
            return []
        from psycopg import sql as pgsql

        done: list[str] = []
        with self._analyze_lock, self.engine.connect() as conn:
            for table in tables:
                row = conn.execute(
                    text(
                        "SELECT c.reltuples, s.n_live_tup, s.n_mod_since_analyze FROM pg_class c "
                        "JOIN pg_stat_user_tables s ON s.relid = c.oid "
                        "WHERE c.oid = to_regclass(:name)"
                    ),
                    {"name": table.name},
                ).first()
                if row is None:
                    continue
                tuples, live, changed = float(row[0]), int(row[1] or 0), int(row[2] or 0)
                threshold = 50 + 0.1 * max(tuples, 0.0)
                if tuples >= 0 and live <= 50 + 1.1 * tuples and changed <= threshold:
                    continue
                _execute_composed(
                    conn, pgsql.SQL("ANALYZE {}").format(pgsql.Identifier(table.name))
                )
                done.append(table.name)
            conn.commit()
        return done

    def has_open_work(self, source: str, entity: str, canonical: str) -> bool:
        """Whether the entity has open map rejects or canonical rows in quarantine."""
        rj, q = t.rejects, t.quarantine
        with self.engine.connect() as conn:
            rejected = conn.execute(
                select(rj.c.id)
                .where(
                    rj.c.stage == "map",
                    rj.c.source == source,
                    rj.c.entity == entity,
                    rj.c.resolved_run.is_(None),
                )
                .limit(1)
            ).first()
            held = conn.execute(
                select(q.c.source_id)
                .where(q.c.canonical_entity == canonical, q.c.source == source)
                .limit(1)
            ).first()
        return rejected is not None or held is not None

    def mark_for_replay(self, source: str, entity: str, *, unless_fp: str | None = None) -> int:
        """Mark staged records pending again; return how many.

        With ``unless_fp``, only records last mapped by another mapping (or before mappings were
        fingerprinted); without it, every staged record of the entity (``concord remap``).
        """
        raw = t.raw_state
        stmt = update(raw).where(
            raw.c.source == source, raw.c.entity == entity, raw.c.pending.is_(False)
        )
        if unless_fp is not None:
            stmt = stmt.where(or_(raw.c.mapped_fp.is_(None), raw.c.mapped_fp != unless_fp))
        with self.begin() as conn:
            return int(conn.execute(stmt.values(pending=True)).rowcount or 0)

    def staged_records(
        self, source: str, entity: str, *, limit: int, ids: Sequence[str] = ()
    ) -> list[tuple[str, bytes]]:
        """Staged (source_id, payload) pairs of one entity, by id: the given ids or the first."""
        raw = t.raw_records
        stmt = (
            select(raw.c.source_id, raw.c.payload)
            .where(raw.c.source == source, raw.c.entity == entity)
            .order_by(raw.c.source_id)
            .limit(limit)
        )
        if ids:
            stmt = stmt.where(raw.c.source_id.in_(list(ids)))
        with self.engine.connect() as conn:
            return [(str(sid), bytes(payload)) for sid, payload in conn.execute(stmt)]

    # -- rejects ----------------------------------------------------------------------------------

    def add_rejects(self, conn: Connection, rejects: Sequence[Reject], *, run_id: str) -> None:
        """Store rejects found by ``run_id``, in the caller's transaction."""
        if rejects:
            now = utcnow()
            conn.execute(
                t.rejects.insert(), [{**r.row(run_id), "created_at": now} for r in rejects]
            )

    def resolve_rejects(
        self,
        conn: Connection,
        *,
        stage: str,
        source: str,
        entity: str,
        source_ids: Sequence[str],
        run_id: str,
    ) -> None:
        """Close open rejects of records that have now gone through."""
        if not source_ids:
            return
        rj = t.rejects
        for i in range(0, len(source_ids), 900):
            conn.execute(
                update(rj)
                .where(
                    rj.c.stage == stage,
                    rj.c.source == source,
                    rj.c.entity == entity,
                    rj.c.resolved_run.is_(None),
                    rj.c.source_id.in_(source_ids[i : i + 900]),
                )
                .values(resolved_run=run_id)
            )

    def rejects(
        self, *, run_id: str | None = None, open_only: bool = True, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Stored rejects, newest first: of one run, open ones only, or all."""
        rj = t.rejects
        stmt = select(rj).order_by(rj.c.id.desc()).limit(limit)
        if run_id:
            stmt = stmt.where(rj.c.run_id == run_id)
        if open_only:
            stmt = stmt.where(rj.c.resolved_run.is_(None))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]
