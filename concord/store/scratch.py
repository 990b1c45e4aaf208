"""A scratch copy of a store: what a dry run writes to, so the real store stays as it was.

A SQLite store is copied with SQLite's online backup (a consistent snapshot, fast); any other
store is streamed table by table, in key order and in batches, into a SQLite file migrated to
the same schema. The copy holds no lock (a sync running on the real store does not stop a dry
run of the copy), and lives in a temporary folder removed when the context ends.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import delete, select

from concord.store import tables as t
from concord.store.store import Store, sqlite_file

BATCH = 5000


@contextmanager
def scratch_copy(store: Store) -> Iterator[Store]:
    """A migrated copy of ``store`` in a temporary SQLite file, deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="concord-dry-run-"))
    path = folder / "scratch.db"
    try:
        source = sqlite_file(store.url)
        if source is not None and source.is_file():
            with sqlite3.connect(source) as src, sqlite3.connect(path) as dst:
                src.backup(dst)
            copy = Store.open(f"sqlite:///{path}")
        else:
            copy = Store.open(f"sqlite:///{path}")
            _stream_tables(store, copy)
        with copy.begin() as conn:
            conn.execute(delete(t.locks))  # the real store's locks are not the copy's
        try:
            yield copy
        finally:
            copy.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _stream_tables(source: Store, target: Store) -> None:
    """Copy every table's rows from ``source`` into the empty, migrated ``target``."""
    with source.engine.connect() as read, target.begin() as write:
        for table in t.metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            result = read.execution_options(yield_per=BATCH).execute(select(table).order_by(*keys))
            for part in result.mappings().partitions(BATCH):
                write.execute(table.insert(), [dict(r) for r in part])
