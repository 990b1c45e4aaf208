"""Seeded, streaming generator of ERP data at benchmark scale for three REST ERP sources.

Each source (erp_a, erp_b, erp_c) gets its own SQLite `ErpStore` file holding customers, orders
(with 1-4 lines), shipments and payments in the sandbox ERP's record shape, so the sandbox
mappings apply unchanged. Customers are drawn from one pool of real-world companies: a share of
the records in erp_b and erp_c are the same company as a record in erp_a (sharing a VAT id or a
company e-mail, written differently), and a few are the same company sharing nothing a rule can
see (found only by a person: they bound the recall). The truth — which records are one company —
goes into `truth.sqlite` for the identity-quality score. Records are produced and written in
batches, so memory stays flat at any scale; the same seed and scale always give the same files.
`touch_night()` changes 1% of every entity for the incremental-night measurement.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from stdnum import luhn
from stdnum.iso7064 import mod_11_10

from sandbox.erp_data import iso
from sandbox.erp_store import ErpStore

SOURCES: tuple[str, ...] = ("erp_a", "erp_b", "erp_c")
BENCH_ENTITIES: tuple[str, ...] = ("customers", "orders", "shipments", "payments")
NOW = datetime(2026, 11, 1, tzinfo=UTC)
NIGHT = NOW + timedelta(hours=2)
BATCH = 5000
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Scale:
    """How much data: customer records across all sources and orders (one shipment and one
    payment per order)."""

    name: str
    customers: int
    orders: int

    @property
    def records(self) -> int:
        return self.customers + 3 * self.orders


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", 600, 3_000),
    "small": Scale("small", 6_000, 30_000),
    "medium": Scale("medium", 40_000, 200_000),
    "full": Scale("full", 200_000, 1_000_000),
}

# share of erp_b / erp_c customer records that repeat an erp_a company
DUP_SHARE = 0.15
# of those, share that shares nothing a rule can match (only the name)
HARD_SHARE = 0.05

_PREFIXES = [
    "Nordlicht",
    "Rheintal",
    "Hansa",
    "Alpenblick",
    "Elbe",
    "Durand",
    "Provence",
    "Loire",
    "Summit",
    "Redwood",
    "Keystone",
    "Cascade",
    "Kestrel",
    "Pennine",
]
_INDUSTRIES = [
    "Maschinenbau",
    "Logistik",
    "Software",
    "Optique",
    "Emballages",
    "Robotics",
    "Supply",
    "Controls",
    "Foods",
    "Engineering",
    "Textiles",
    "Plastics",
]
_PRODUCTS = [
    ("P-100", "Widget", Decimal("50.00")),
    ("P-200", "Gear assembly", Decimal("245.00")),
    ("P-210", "Bearing set", Decimal("18.50")),
    ("P-310", "Sensor kit", Decimal("342.75")),
    ("P-400", "Hose 2m", Decimal("27.40")),
    ("P-500", "Service hour", Decimal("95.00")),
]
_ORDER_STATES = ["done"] * 8 + ["shipped", "confirmed", "cancel"]
_SHIP_STATES = ["delivered"] * 8 + ["shipped", "returned"]


def _before_now(moment: datetime, rng: random.Random) -> datetime:
    """`moment`, or a time in the last three days when it would lie in the future (spread, so
    records do not pile up on one updated_at)."""
    if moment < NOW:
        return moment
    return NOW - timedelta(seconds=rng.randint(60, 3 * 86_400))


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Company:
    """One real-world company of the pool (what all its records share)."""

    key: int
    country: str
    name: str
    vat: str | None
    domain: str


def company(key: int) -> Company:
    """Company number `key`: unique valid VAT id and domain derived from the number."""
    country = ("DE", "FR", "US")[key % 3]
    name = f"{_PREFIXES[key % len(_PREFIXES)]} {_INDUSTRIES[(key // 14) % 12]} {key}"
    vat: str | None = None
    if country == "DE":
        body = str(10_000_000 + key)
        vat = f"DE{body}{mod_11_10.calc_check_digit(body)}"
    elif country == "FR":
        stem = str(10_000_000 + key)
        siren = stem + luhn.calc_check_digit(stem)
        vat = f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"
    tld = {"DE": "de", "FR": "fr", "US": "com"}[country]
    return Company(key, country, name, vat, f"c{key}.example.{tld}")


def customer_id(source: str, n: int) -> str:
    return f"{source[-1].upper()}-C{n:07d}"


class _SourceGen:
    """Record factories for one source; `rng` is the source's own seeded generator."""

    def __init__(self, source: str, index: int, scale: Scale, seed: int) -> None:
        self.source = source
        self.index = index
        self.rng = random.Random(f"{seed}:{source}")
        self.n_customers = scale.customers // 3 + (1 if index < scale.customers % 3 else 0)
        self.n_orders = scale.orders // 3 + (1 if index < scale.orders % 3 else 0)
        self.a_customers = scale.customers // 3 + (1 if scale.customers % 3 else 0)

    def customer(self, n: int) -> tuple[dict[str, Any], int]:
        """Customer record number `n` (1-based) and the company key it belongs to."""
        rng = self.rng
        key = self.index * 10_000_000 + n
        mode = "own"
        if self.index > 0 and rng.random() < DUP_SHARE:
            key = rng.randint(1, self.a_customers)  # an erp_a company
            mode = "hard" if rng.random() < HARD_SHARE else rng.choice(["vat", "email"])
        co = company(key)
        name, vat, email = co.name, co.vat, f"info@{co.domain}"
        if mode == "vat" and vat:
            name, email = name.upper(), f"accounts{n}@{self.source}.example.net"
        elif mode in ("vat", "email"):
            name, vat, email = f"{name.lower()} ", None, email.upper()
        elif mode == "hard":
            name, vat, email = f"{name} Ltd", None, f"buyer{n}@{self.source}.example.net"
        created = NOW - timedelta(days=800 + rng.randint(0, 400), seconds=rng.randint(0, 86399))
        updated = created + timedelta(days=rng.randint(0, 700))
        record = {
            "id": customer_id(self.source, n),
            "company": name,
            "legal_name": name,
            "vat_id": vat,
            "country": co.country,
            "email": email,
            "phone": f"+49 30 {1_000_000 + key % 8_999_999}",
            "billing_address": {
                "street": f"Hauptstraße {1 + key % 180}",
                "city": "Berlin",
                "zip": f"{10000 + key % 89999}",
                "country": co.country,
            },
            "currency": "USD" if co.country == "US" else "EUR",
            "type": "company",
            "crm_ref": None,
            "created_at": iso(created),
            "updated_at": iso(updated),
        }
        return record, key

    def order_bundle(self, n: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Order number `n` with its shipment and payment."""
        rng = self.rng
        tag = self.source[-1].upper()
        cust = customer_id(self.source, rng.randint(1, self.n_customers))
        at = NOW - timedelta(days=rng.randint(1, 730), seconds=rng.randint(0, 86399))
        lines: list[dict[str, Any]] = []
        untaxed = Decimal(0)
        for sku, label, price in rng.sample(_PRODUCTS, rng.randint(1, 4)):
            qty = rng.randint(1, 5)
            lines.append({"sku": sku, "name": label, "qty": qty, "unit_price": _money(price)})
            untaxed += price * qty
        tax = (untaxed * Decimal("0.19")).quantize(CENT, rounding=ROUND_HALF_UP)
        currency = "USD" if cust.endswith(("3", "6", "9")) else "EUR"
        oid = f"{tag}-SO{n:08d}"
        state = rng.choice(_ORDER_STATES)
        changed = at + timedelta(days=rng.randint(0, 20))
        order = {
            "id": oid,
            "number": oid,
            "customer_id": cust,
            "order_date": iso(at),
            "state": state,
            "currency": currency,
            "amount_untaxed": _money(untaxed),
            "amount_tax": _money(tax),
            "amount_total": _money(untaxed + tax),
            "lines": lines,
            "updated_at": iso(_before_now(changed, rng)),
        }
        shipped = at + timedelta(days=rng.randint(1, 4))
        delivered = shipped + timedelta(days=rng.randint(1, 6))
        ship_state = rng.choice(_SHIP_STATES)
        shipment = {
            "id": f"{tag}-SH{n:08d}",
            "number": f"WH/OUT/{tag}{n:08d}",
            "order_id": oid,
            "customer_id": cust,
            "ship_date": iso(shipped),
            "delivery_date": iso(delivered) if ship_state != "shipped" else None,
            "promised_date": iso(at + timedelta(days=5)),
            "carrier": "DHL",
            "tracking_no": f"DHL{n:012d}",
            "state": ship_state,
            "updated_at": iso(_before_now(delivered, rng)),
        }
        paid = at + timedelta(days=rng.randint(5, 60))
        payment = {
            "id": f"{tag}-PAY{n:08d}",
            "reference": f"PAY/{tag}{n:08d}",
            "customer_id": cust,
            "invoice_id": None,
            "payment_date": iso(_before_now(paid, rng)),
            "currency": currency,
            "amount": order["amount_total"],
            "method": rng.choice(["bank_transfer", "card", "sepa_dd"]),
            "state": "done" if rng.random() < 0.97 else "failed",
            "updated_at": iso(_before_now(paid, rng)),
        }
        return order, shipment, payment


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def source_path(directory: Path, source: str) -> Path:
    return directory / f"{source}.sqlite"


def truth_path(directory: Path) -> Path:
    return directory / "truth.sqlite"


def generate(directory: Path, scale: Scale, seed: int = 7) -> dict[str, dict[str, int]]:
    """Write the three source files and the truth file under `directory` (replacing old ones);
    return record counts per source and entity."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in [truth_path(directory), *(source_path(directory, s) for s in SOURCES)]:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    truth = sqlite3.connect(truth_path(directory))
    truth.execute(
        "CREATE TABLE truth (source TEXT, id TEXT, company INTEGER, PRIMARY KEY (source, id))"
    )
    counts: dict[str, dict[str, int]] = {}
    for index, source in enumerate(SOURCES):
        gen = _SourceGen(source, index, scale, seed)
        store = ErpStore(source_path(directory, source), BENCH_ENTITIES)
        counts[source] = {e: 0 for e in BENCH_ENTITIES}
        for batch in _batched((gen.customer(n) for n in range(1, gen.n_customers + 1)), BATCH):
            counts[source]["customers"] += store.add_many("customers", [r for r, _ in batch])
            with truth:
                truth.executemany(
                    "INSERT INTO truth VALUES (?, ?, ?)",
                    [(source, r["id"], key) for r, key in batch],
                )
        bundles = (gen.order_bundle(n) for n in range(1, gen.n_orders + 1))
        for batch in _batched(bundles, BATCH):
            for pos, entity in enumerate(("orders", "shipments", "payments")):
                counts[source][entity] += store.add_many(entity, [b[pos] for b in batch])
        store.close()
    truth.close()
    return counts


def touch_night(directory: Path, share: float = 0.01, seed: int = 7) -> int:
    """Change `share` of every entity in every source (new state, amount or phone) with an
    updated_at in the night after the first run; returns how many records changed."""
    rng = random.Random(f"{seed}:night")
    changed = 0
    for source in SOURCES:
        store = ErpStore(source_path(directory, source), BENCH_ENTITIES)
        for entity in BENCH_ENTITIES:
            total = store.count(entity)
            picks = rng.sample(range(total), max(1, int(total * share))) if total else []
            ids = sorted(_entity_id(source, entity, i + 1) for i in picks)
            records = []
            for k, rid in enumerate(ids):
                record = store.get(entity, rid)
                if record is None:
                    continue
                record["updated_at"] = iso(NIGHT + timedelta(seconds=k))
                if entity == "customers":
                    record["phone"] = f"+49 40 {rng.randint(1_000_000, 9_999_999)}"
                elif entity == "orders":
                    record["state"] = "done"
                elif entity == "shipments":
                    record["state"] = "delivered"
                else:
                    record["method"] = "card"
                records.append(record)
            changed += store.replace_many(entity, records)
        store.close()
    return changed


def _entity_id(source: str, entity: str, n: int) -> str:
    tag = source[-1].upper()
    return {
        "customers": customer_id(source, n),
        "orders": f"{tag}-SO{n:08d}",
        "shipments": f"{tag}-SH{n:08d}",
        "payments": f"{tag}-PAY{n:08d}",
    }[entity]


def truth_pairs_count(directory: Path) -> int:
    """How many record pairs are truly the same company."""
    conn = sqlite3.connect(truth_path(directory))
    try:
        row = conn.execute(
            "SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM "
            "(SELECT count(*) AS n FROM truth GROUP BY company)"
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()
