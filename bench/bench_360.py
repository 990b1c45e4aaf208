"""Build-360 incremental against full, on a generated canonical store (no servers).

``python bench/bench_360.py [--customers 10000] [--changed 0.01] [--store-url URL]``

Writes customers (one golden customer each), a year and a half of orders, invoices (a fifth in
USD with dated rates), allocations and shipments straight into a fresh store, builds the 360 in
full (the first night), changes ``--changed`` of the customers' documents under a new run id (a
new order, a paid invoice, a renamed customer) and builds that night incrementally; then the
same data and changes again in a fresh store, the second night in full. Prints the seconds of
each and the recomputed counts as JSON. SQLite by default; ``--store-url`` a PostgreSQL URL
measures that store (each pass in its own schema, dropped after).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from concord.config import PipelineConfig  # noqa: E402
from concord.pipeline.build_360 import build  # noqa: E402
from concord.store import Store  # noqa: E402
from concord.store import tables as t  # noqa: E402

AS_OF = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def _common(source_id: str, run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": "erp",
        "source_id": source_id,
        "data": data,
        "hash": source_id[:32],
        "updated_at": AS_OF,
        "run_id": run_id,
        "mapping_fp": None,
        "state": None,
    }


def generate(
    n: int, rnd: random.Random, run_id: str, only: set[int] | None = None, tag: str = ""
) -> dict[str, list[dict[str, Any]]]:
    """Canonical rows as the map stage writes them (``data`` holds what the 360 reads)."""
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in t.CANONICAL_TABLES}
    for i in range(n) if only is None else sorted(only):
        cid = f"c{i}"
        name = f"Customer {i}{tag}"
        rows["customers"].append(
            {
                **_common(cid, run_id, {"name": name, "country": "DE", "emails": [f"{i}@x.de"]}),
                "name": name,
                "email": f"{i}@x.de",
                "tax_id": f"DE{i:09d}",
                "country": "DE",
                "number": f"K{i}",
            }
        )
        for k in range(rnd.randint(1, 9) if only is None else 1):
            oid = f"o{i}-{k}{tag}"
            when = AS_OF - timedelta(
                days=rnd.randint(0 if tag else 1, 540), hours=rnd.randint(0, 23)
            )
            cur = "USD" if rnd.random() < 0.2 else "EUR"
            total = Decimal(rnd.randint(1000, 90000)) / 100
            rows["orders"].append(
                {
                    **_common(oid, run_id, {}),
                    "customer_id": cid,
                    "number": oid,
                    "ordered_at": when,
                    "status": "closed",
                    "currency": cur,
                    "net_total": total,
                    "gross_total": total,
                }
            )
            if rnd.random() < 0.7:
                paid = rnd.random() < 0.7 or bool(tag)
                rows["invoices"].append(
                    {
                        **_common(f"i{i}-{k}{tag}", run_id, {}),
                        "customer_id": cid,
                        "order_id": oid,
                        "status": "paid" if paid else "posted",
                        "issued_at": when,
                        "due_at": when + timedelta(days=30),
                        "currency": cur,
                        "total": total,
                        "open_amount": Decimal(0) if paid else total,
                    }
                )
                if paid:
                    rows["payments"].append(
                        {
                            **_common(f"p{i}-{k}{tag}", run_id, {}),
                            "customer_id": cid,
                            "invoice_id": f"i{i}-{k}{tag}",
                            "status": "completed",
                            "paid_at": when + timedelta(days=rnd.randint(1, 40)),
                            "currency": cur,
                            "amount": total,
                        }
                    )
            if rnd.random() < 0.6:
                promised = when + timedelta(days=5)
                rows["shipments"].append(
                    {
                        **_common(f"s{i}-{k}{tag}", run_id, {}),
                        "customer_id": cid,
                        "order_id": oid,
                        "status": "delivered",
                        "shipped_at": when,
                        "delivered_at": promised + timedelta(days=rnd.choice([-1, -1, 2])),
                        "promised_at": promised,
                    }
                )
    return rows


def write(store: Store, rows: dict[str, list[dict[str, Any]]]) -> None:
    with store.begin() as conn:
        for entity, batch in rows.items():
            for i in range(0, len(batch), 5000):
                store.upsert(
                    conn, t.CANONICAL_TABLES[entity], batch[i : i + 5000], ["source", "source_id"]
                )


def seed(store: Store, n: int, rnd: random.Random) -> None:
    rows = generate(n, rnd, "night_1")
    rows["exchange_rates"] = [
        {
            **_common(
                f"USD-{d}",
                "night_1",
                {
                    "currency": "USD",
                    "valid_from": d.isoformat(),
                    "rate": str(Decimal("0.9") + Decimal(m) / 1000),
                    "base": "EUR",
                },
            ),
            "currency": "USD",
            "valid_from": d,
            "base": "EUR",
        }
        for m in range(24)
        for d in [date(2025, 1, 1) + timedelta(days=30 * m)]
    ]
    write(store, rows)
    links = [
        {
            "source": "erp",
            "source_id": f"c{i}",
            "concord_id": f"cc_{i:016d}",
            "rule": "seed",
            "score": 1.0,
            "matched_to": None,
            "run_id": "night_1",
            "fingerprint": None,
        }
        for i in range(n)
    ]
    with store.begin() as conn:
        for i in range(0, len(links), 5000):
            store.upsert(conn, t.identity_links, links[i : i + 5000], ["source", "source_id"])


def timed(
    store: Store, cfg: PipelineConfig, as_of: datetime, run_id: str, full: bool
) -> dict[str, Any]:
    started = time.perf_counter()
    report = build(store, cfg, as_of, run_id, frozenset({"erp"}), full=full)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "customers": report.customers,
        "recomputed": report.recomputed,
        "changed": report.recomputed_changed,
        "boundary": report.recomputed_boundary,
        "written": report.written,
        "full_reason": report.full_reason,
    }


def one_run(url: str, args: argparse.Namespace, full_night: bool) -> dict[str, Any]:
    """Seed, the first night, the changes, then the second night incremental or in full."""
    rnd = random.Random(args.seed)  # the same data and changes in every run
    store = Store.open(url)
    cfg = PipelineConfig.model_validate({"sources": {}, "base_currency": "EUR"})
    started = time.perf_counter()
    seed(store, args.customers, rnd)
    out: dict[str, Any] = {"store": store.dialect, "seed_seconds": 0.0}
    out["seed_seconds"] = round(time.perf_counter() - started, 1)
    out["first_full"] = timed(store, cfg, AS_OF, "night_1", full=False)
    changed = set(rnd.sample(range(args.customers), max(1, int(args.changed * args.customers))))
    write(store, generate(args.customers, rnd, "night_2", only=changed, tag="-n2"))
    out["second"] = timed(store, cfg, AS_OF + timedelta(days=1), "night_2", full=full_night)
    store.dispose()
    return out


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one run, dropped after."""
    import sqlalchemy as sa

    schema = f"bench360_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--store-url", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    out: dict[str, Any] = {"customers": args.customers, "changed": args.changed}
    for full_night in (False, True):
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            url = f"sqlite:///{Path(tmp) / 'bench360.db'}"
            if args.store_url:
                url = stack.enter_context(pg_schema(args.store_url))
            run = one_run(url, args, full_night)
        out["store"] = run["store"]
        out["first_night_full"] = run["first_full"]
        out["full_night" if full_night else "incremental_night"] = run["second"]
    out["incremental_over_full"] = round(
        out["incremental_night"]["seconds"] / max(out["full_night"]["seconds"], 1e-9), 3
    )
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
