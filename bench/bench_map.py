"""Micro-benchmark: concord's map stage against the map ceiling, on SQLite and PostgreSQL.

``python -m bench.bench_map [--orders N] [--postgres URL [--only-postgres]] [--out PATH]``
stages N orders with their shipments and payments and N/5 customers (the bench generator's
records) in a fresh store, then times, per entity:

- **ceiling**: the payload bytes already in memory, ``orjson.loads`` + the compiled mapping +
  one raw driver write of ``(source, source_id, JSON of the output)`` per record into a bare
  table (``executemany`` on SQLite, ``COPY`` on PostgreSQL): nothing concord could skip;
- **concord**: ``concord.pipeline.map.map_entity``, the stage as a sync runs it (reads the staged
  records, checks, writes canonical rows with their typed columns, rejects, marks them mapped),
  on one core like the ceiling.

Prints records/s of both and the ratio, and writes them as JSON (``--out``); the full bench
report (``python -m bench``) runs it on the bench's store (``--postgres``: PostgreSQL).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.generate import SCALES, _SourceGen
from concord.config import load_config
from concord.hashing import digest
from concord.pipeline import RunOptions, open_context
from concord.pipeline.map import map_entity
from concord.pipeline.map_batches import MapPool
from concord.store import StagedRow

REPO = Path(__file__).resolve().parent.parent
ENTITIES = ("customers", "orders", "shipments", "payments")
SOURCE = "erp_a"


def records(orders: int, seed: int = 7) -> dict[str, list[bytes]]:
    """Payloads of the bench generator: ``orders`` bundles and a fifth as many customers."""
    gen = _SourceGen(SOURCE, 0, SCALES["full"], seed)
    out: dict[str, list[bytes]] = {e: [] for e in ENTITIES}
    for n in range(1, orders + 1):
        order, shipment, payment = gen.order_bundle(n)
        out["orders"].append(orjson.dumps(order))
        out["shipments"].append(orjson.dumps(shipment))
        out["payments"].append(orjson.dumps(payment))
        if n % 5 == 0:
            out["customers"].append(orjson.dumps(gen.customer(n // 5)[0]))
    return out


def write_config(directory: Path, store_url: str) -> Path:
    mappings = REPO / "mappings" / "sandbox_erp"
    lines = [
        f"store_url: {store_url}",
        "base_currency: EUR",
        "batch_size: 2000",
        "sources:",
        f"  {SOURCE}:",
        "    type: rest",
        "    base_url: http://127.0.0.1:9",
        "    entities:",
        *(f"      {e}: {{path: /{e}, mapping: {mappings / e}.yaml}}" for e in ENTITIES),
    ]
    path = directory / "bench_map.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def ceiling_sqlite(path: Path, entity: str, payloads: list[bytes], apply: Any) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS ceiling_{entity} "
        "(source TEXT, source_id TEXT, data TEXT, PRIMARY KEY (source, source_id))"
    )
    started = time.perf_counter()
    for i in range(0, len(payloads), 2000):
        rows = []
        for payload in payloads[i : i + 2000]:
            out = apply(orjson.loads(payload))
            rows.append((SOURCE, out["id"], orjson.dumps(out, default=str).decode()))
        conn.executemany(f"INSERT INTO ceiling_{entity} VALUES (?, ?, ?)", rows)  # noqa: S608
        conn.commit()
    took = time.perf_counter() - started
    conn.close()
    return took


def ceiling_postgres(url: str, entity: str, payloads: list[bytes], apply: Any) -> float:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(
            f"CREATE TEMPORARY TABLE ceiling_{entity} "
            "(source TEXT, source_id TEXT, data JSON, PRIMARY KEY (source, source_id))"
        )
        conn.commit()
        started = time.perf_counter()
        for i in range(0, len(payloads), 2000):
            with conn.cursor() as cur:
                with cur.copy(f"COPY ceiling_{entity} FROM STDIN") as copy:
                    for payload in payloads[i : i + 2000]:
                        out = apply(orjson.loads(payload))
                        copy.write_row((SOURCE, out["id"], orjson.dumps(out, default=str).decode()))
            conn.commit()
        return time.perf_counter() - started


def run(orders: int, store_url: str | None, workdir: Path) -> dict[str, Any]:
    """Time ceiling and concord per entity on one store; returns the figures."""
    url = store_url or f"sqlite:///{workdir / 'map.db'}"
    config = load_config(write_config(workdir, url))
    ctx = open_context(config, RunOptions(trigger="bench"))
    data = records(orders)
    result: dict[str, Any] = {"store": ctx.store.dialect, "entities": {}}
    total_ceiling = total_concord = total_pooled = 0.0
    pool = MapPool(config.map_workers)
    total_records = 0
    for entity in ENTITIES:
        payloads = data[entity]
        mapping = ctx.mappings[(SOURCE, entity)]
        staged = []
        for payload in payloads:
            sid = str(orjson.loads(payload)["id"])
            staged.append(StagedRow(sid, payload, digest(payload), None))
        for i in range(0, len(staged), 5000):
            with ctx.store.begin() as conn:
                ctx.store.stage(conn, SOURCE, entity, staged[i : i + 5000], ctx.run_id)
        if ctx.store.dialect == "postgresql":
            ceiling = ceiling_postgres(url, entity, payloads, mapping.apply)
        else:
            ceiling = ceiling_sqlite(workdir / "ceiling.db", entity, payloads, mapping.apply)
        started = time.perf_counter()
        report = map_entity(ctx, SOURCE, entity)
        took = time.perf_counter() - started
        n = len(payloads)
        assert report.mapped == n, (entity, report.mapped, report.rejected)
        # again with the config's map workers (every record replayed: the replay is counted),
        # one pool for every entity as a sync has (its start counted in the first that uses it)
        started = time.perf_counter()
        again = map_entity(ctx, SOURCE, entity, replay="all", pool=pool)
        pooled = time.perf_counter() - started
        assert again.mapped == n, (entity, again.mapped, again.rejected)
        result["entities"][entity] = {
            "records": n,
            "ceiling_rps": round(n / ceiling),
            "concord_rps": round(n / took),
            "ratio": round(ceiling / took, 3),
            "workers": again.workers,
            "workers_rps": round(n / pooled),
        }
        total_ceiling += ceiling
        total_concord += took
        total_pooled += pooled
        total_records += n
    pool.close()
    ctx.store.dispose()
    result["records"] = total_records
    result["ceiling_rps"] = round(total_records / total_ceiling)
    result["concord_rps"] = round(total_records / total_concord)
    result["ratio"] = round(total_ceiling / total_concord, 3)
    result["map_workers"] = config.map_workers
    result["workers_rps"] = round(total_records / total_pooled)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_map", description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--postgres", default=None, help="PostgreSQL URL (default: SQLite only)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--only-postgres", action="store_true", help="with --postgres: skip the SQLite run"
    )
    args = parser.parse_args(argv)
    results = []
    if not (args.only_postgres and args.postgres):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run(args.orders, None, Path(tmp)))
    if args.postgres:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(_on_fresh_schema(args.postgres, args.orders, Path(tmp)))
    for r in results:
        print(
            f"{r['store']:<10} ceiling {r['ceiling_rps']:>8,} rec/s  concord {r['concord_rps']:>8,}"
            f" rec/s  ratio {r['ratio']:.2f}"
        )
        for entity, e in r["entities"].items():
            print(
                f"  {entity:<10} ceiling {e['ceiling_rps']:>8,}  concord {e['concord_rps']:>8,}"
                f"  ratio {e['ratio']:.2f}"
            )
    if args.out:
        args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


def _on_fresh_schema(url: str, orders: int, workdir: Path) -> dict[str, Any]:
    """Run on PostgreSQL in a schema of its own, dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    base = url.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"bench_map_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(schema))
    sep = "&" if "?" in base else "?"
    try:
        return run(orders, f"{base}{sep}options=-csearch_path%3D{schema}", workdir)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.schema.DropSchema(schema, cascade=True))
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
