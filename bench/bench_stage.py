"""Micro-benchmark: the extract stage's store writes, page by page, as the raw table grows.

``python -m bench.bench_stage [--postgres URL] [--pages N] [--threads K] [--page-size P]``
stages N pages of P bench-generator records per entity (orders, shipments, payments,
customers) into a fresh store, each page in one transaction with its checkpoint exactly as
``concord.pipeline.extract.stage_pages`` writes it (``Store.stage`` + ``save_checkpoint``,
``synchronous_commit`` off on PostgreSQL), with no HTTP in between: what is measured is the
store. ``--threads 4`` stages the entities side by side like the concurrent extract
(``extract_concurrency`` 4). It prints the seconds per page every ``--every`` pages (the
table growing), the records/s overall and, on PostgreSQL, the wait events seen in
``pg_stat_activity`` (sampled every 20 ms). ``--restage`` stages the same pages a second time
(unchanged records: the lookup of known hashes only). The PostgreSQL URL gets a fresh schema
``concord_bench_stage`` (dropped first).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
from sqlalchemy import create_engine, text

from bench.generate import SCALES, _SourceGen
from bench.runner import fresh_store
from concord.hashing import record_digest
from concord.store import StagedRow, Store

ENTITIES = ("orders", "shipments", "payments", "customers")
SOURCE = "erp_a"


def pages(entity: str, count: int, size: int, seed: int = 7) -> list[list[StagedRow]]:
    """``count`` pages of ``size`` staged rows of one entity (the bench generator's records)."""
    gen = _SourceGen(SOURCE, 0, SCALES["full"], seed)
    out: list[list[StagedRow]] = []
    n = 0
    for _ in range(count):
        page: list[StagedRow] = []
        for _ in range(size):
            n += 1
            if entity == "customers":
                record = gen.customer(n)[0]
            else:
                order, shipment, payment = gen.order_bundle(n)
                record = {"orders": order, "shipments": shipment, "payments": payment}[entity]
            page.append(
                StagedRow(
                    str(record["id"]),
                    orjson.dumps(record),
                    record_digest(record),
                    str(record["updated_at"]),
                )
            )
        out.append(page)
    return out


def stage_entity(
    store: Store, entity: str, data: list[list[StagedRow]], times: list[float]
) -> None:
    """Stage every page of ``data`` as ``stage_pages`` does, appending each page's seconds."""
    for i, page in enumerate(data):
        started = time.perf_counter()
        with store.begin() as conn:
            if store.dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            store.stage(conn, SOURCE, entity, page, "bench-run")
            store.save_checkpoint(
                conn,
                SOURCE,
                entity,
                cursor=None,
                checkpoint=f"page-{i}",
                checkpoint_cursor=page[-1].cursor,
                run_id="bench-run",
            )
        times.append(time.perf_counter() - started)


class WaitSampler(threading.Thread):
    """Counts the wait events of the store's other sessions in ``pg_stat_activity``."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(url)
        self.seen: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        sql = text(
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND state <> 'idle'"
        )
        with self.engine.connect() as conn:
            while not self.stop.wait(0.02):
                for state, kind, event in conn.execute(sql):
                    self.seen[f"{state}: {kind or 'CPU'}/{event or '-'}"] += 1
                conn.rollback()
        self.engine.dispose()


def run(
    store: Store, data: dict[str, list[list[StagedRow]]], threads: int
) -> dict[str, list[float]]:
    """Stage every entity's pages (``threads`` at once); the seconds of each page by entity."""
    times: dict[str, list[float]] = {e: [] for e in data}
    if threads <= 1:
        for entity, entity_pages in data.items():
            stage_entity(store, entity, entity_pages, times[entity])
        return times
    workers = [
        threading.Thread(target=stage_entity, args=(store, e, p, times[e])) for e, p in data.items()
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return times


def report(label: str, times: dict[str, list[float]], size: int, every: int, took: float) -> None:
    """Seconds per page along the way, and the records/s of the whole pass."""
    print(f"== {label}")
    for entity, secs in times.items():
        steps = [
            f"{i + 1}:{sum(secs[max(0, i + 1 - every) : i + 1]) / min(every, i + 1):.3f}"
            for i in range(every - 1, len(secs), every)
        ]
        print(f"  {entity:<10} s/page by page  " + "  ".join(steps))
    records = sum(len(s) for s in times.values()) * size
    print(f"  {records} records in {took:.2f} s: {records / took:,.0f} records/s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_stage")
    parser.add_argument("--postgres", help="PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--pages", type=int, default=40, help="pages per entity")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--every", type=int, default=10, help="print the mean of so many pages")
    parser.add_argument("--restage", action="store_true", help="stage the same pages again")
    args = parser.parse_args(argv)
    entities = ENTITIES[: max(1, args.threads)] if args.threads > 1 else ENTITIES[:1]
    generated = time.perf_counter()
    data = {e: pages(e, args.pages, args.page_size) for e in entities}
    print(f"generated in {time.perf_counter() - generated:.1f} s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_store(Path(tmp), args.postgres, "stage")  # schema concord_bench_stage
        store = Store.open(url)
        passes = ["first"] + (["again (unchanged)"] if args.restage else [])
        for label in passes:
            sampler = WaitSampler(url) if store.dialect == "postgresql" else None
            if sampler is not None:
                sampler.start()
            started = time.perf_counter()
            times = run(store, data, args.threads)
            took = time.perf_counter() - started
            report(label, times, args.page_size, args.every, took)
            if sampler is not None:
                sampler.stop.set()
                sampler.join()
                total = sum(sampler.seen.values()) or 1
                for what, n in sampler.seen.most_common(8):
                    print(f"  {n / total:6.1%}  {what}")
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
