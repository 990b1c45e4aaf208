"""A SQLite-backed `ErpStorage` for the sandbox REST ERP at benchmark scale: one table per entity
holding each record's JSON payload keyed by (updated_at in microseconds, id), so `page()` is an
index range scan and memory stays flat however many records the file holds. The bench generator
fills a file with `ErpStore.writer()` and `add_many()`, changes records for the incremental night
with `touch_many()`, and a server process (`bench.serve`) opens the same file read-mostly; each
server thread gets its own connection."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sandbox.erp_data import ENTITIES, Record, parse_iso

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime: the sortable key of updated_at."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class ErpStore:
    """Records of every ERP entity in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path | str, entities: Iterable[str] = ENTITIES) -> None:
        self.path = Path(path)
        self.entities = tuple(entities)
        unknown = set(self.entities) - set(ENTITIES)
        if unknown:
            raise ValueError(f"unknown entities {sorted(unknown)}")
        self._local = threading.local()
        with self._connect() as conn:
            for entity in self.entities:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {entity} ("
                    "ts INTEGER NOT NULL, id TEXT NOT NULL, payload BLOB NOT NULL, "
                    "PRIMARY KEY (ts, id)) WITHOUT ROWID"
                )
                conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {entity}_id ON {entity} (id)")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _check(self, entity: str) -> str:
        if entity not in self.entities:
            raise KeyError(f"unknown entity {entity!r}")
        return entity

    # -- ErpStorage ---------------------------------------------------------------------------

    def has_entity(self, entity: str) -> bool:
        return entity in self.entities

    def page(
        self,
        entity: str,
        updated_since: datetime | None = None,
        updated_before: datetime | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[Record]:
        """Records with updated_since <= updated_at < updated_before, in (updated_at, id) order,
        strictly after the `after` key (updated_at ISO string, id), at most `limit`."""
        table = self._check(entity)
        clauses: list[str] = []
        params: list[Any] = []
        if updated_since is not None:
            clauses.append("ts >= ?")
            params.append(micros(updated_since))
        if updated_before is not None:
            clauses.append("ts < ?")
            params.append(micros(updated_before))
        if after is not None:
            clauses.append("(ts, id) > (?, ?)")
            params.extend([micros(parse_iso(after[0])), after[1]])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(limit)
        rows = self._conn().execute(
            f"SELECT payload FROM {table} {where} ORDER BY ts, id LIMIT ?",  # noqa: S608
            params,
        )
        return [orjson.loads(payload) for (payload,) in rows]

    def get(self, entity: str, id: str) -> Record | None:
        table = self._check(entity)
        row = (
            self._conn()
            .execute(f"SELECT payload FROM {table} WHERE id = ?", (id,))  # noqa: S608
            .fetchone()
        )
        return None if row is None else dict(orjson.loads(row[0]))

    # -- filling and changing -----------------------------------------------------------------

    def add_many(self, entity: str, records: Iterable[Record]) -> int:
        """Insert records (each with "id" and ISO "updated_at") in one transaction; returns how
        many. Feed it batches from a generator to keep memory flat."""
        table = self._check(entity)
        conn = self._conn()
        rows = ((micros(parse_iso(r["updated_at"])), r["id"], orjson.dumps(r)) for r in records)
        with conn:
            cur = conn.executemany(
                f"INSERT INTO {table} (ts, id, payload) VALUES (?, ?, ?)",  # noqa: S608
                rows,
            )
        return cur.rowcount

    def replace_many(self, entity: str, records: Iterable[Record]) -> int:
        """Replace records by id (their updated_at may move); returns how many were replaced."""
        table = self._check(entity)
        conn = self._conn()
        count = 0
        with conn:
            for record in records:
                conn.execute(f"DELETE FROM {table} WHERE id = ?", (record["id"],))  # noqa: S608
                conn.execute(
                    f"INSERT INTO {table} (ts, id, payload) VALUES (?, ?, ?)",  # noqa: S608
                    (micros(parse_iso(record["updated_at"])), record["id"], orjson.dumps(record)),
                )
                count += 1
        return count

    def count(self, entity: str) -> int:
        table = self._check(entity)
        row = self._conn().execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        return int(row[0])

    def iter_all(self, entity: str, batch: int = 5000) -> Iterator[Record]:
        """Every record of `entity` in (updated_at, id) order, read in batches."""
        after: tuple[int, str] | None = None
        table = self._check(entity)
        while True:
            if after is None:
                rows = self._conn().execute(
                    f"SELECT ts, id, payload FROM {table} ORDER BY ts, id LIMIT ?",  # noqa: S608
                    (batch,),
                )
            else:
                rows = self._conn().execute(
                    f"SELECT ts, id, payload FROM {table} WHERE (ts, id) > (?, ?) "  # noqa: S608
                    "ORDER BY ts, id LIMIT ?",
                    (*after, batch),
                )
            fetched = rows.fetchall()
            if not fetched:
                return
            for _ts, _id, payload in fetched:
                yield orjson.loads(payload)
            after = (fetched[-1][0], fetched[-1][1])

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
