"""Each customer-360 figure against the same figure recomputed from Tryton's raw records.

On top of the seeded template, ``tryton_360_script.py`` adds a quotation, a draft and a cancelled
sale, dated USD rates and a dated EUR rate, a USD sale and a USD invoice dated in the past, an
invoice due today, Pay-wizard payments (full, partial, a USD partial) and a draft payment order,
and puts the company in New York. concord then syncs with the tryton profile and its shipped
mappings; the test reads Tryton's records through its REST API and recomputes, per golden
customer, revenue, order count, last order, invoiced, paid, open, overdue and days to pay the way
docs/customer360.md defines them, and checks that concord's open balance equals Tryton's own
``receivable`` per customer.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml
from sqlalchemy import select

from concord.config import load_config
from concord.customer360.stored import whole_rows
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from connectors.erp.tryton import decode_record, encode_param
from tests.integration.tryton.conftest import REPO, TrytonServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SCRIPT = Path(__file__).with_name("tryton_360_script.py")
CENT = Decimal("0.01")
ENTITIES = {
    "customers": ("party.party", "party.yaml", ""),
    "orders": ("sale.sale", "sale.yaml", ""),
    "shipments": ("stock.shipment.out", "shipment.yaml", ""),
    "invoices": ("account.invoice", "invoice.yaml", ""),
    "payments": ("account.payment", "payment.yaml", ""),
    "payment_lines": ("account.move.line", "payment_line.yaml", "line-"),
    "exchange_rates": ("currency.currency.rate", "exchange_rate.yaml", ""),
}


def write_config(path: Path, server: TrytonServer, store_url: str, timezone: str) -> Path:
    entities: dict[str, Any] = {}
    for name, (resource, mapping, prefix) in ENTITIES.items():
        entities[name] = {
            "resource": resource,
            "mapping": str(REPO / "mappings" / "tryton" / mapping),
            "cursor_field": "last_modified_at",
        }
        if prefix:
            entities[name]["id_prefix"] = prefix
    config = {
        "store_url": store_url,
        "base_currency": "EUR",
        "timezone": timezone,
        "push_gate": {"receivable_tolerance": "0.00"},
        "sources": {
            "tryton": {
                "type": "rest",
                "profile": "tryton",
                "base_url": server.url,
                "auth": {"token": {"env": "CONCORD_TEST_TRYTON_KEY"}},
                "page_size": 9,
                "entities": entities,
            }
        },
        "targets": {},
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Rest:
    """Tryton's REST API, read the way a finance analyst with the API key would."""

    def __init__(self, server: TrytonServer) -> None:
        self.base = f"{server.url}/rest/model"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.key}"

    def get(
        self, model: str, fields: list[str], domain: list[Any] | None = None, **context: Any
    ) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [("f", f) for f in fields]
        params.append(("o", encode_param([["id", "ASC"]])))
        if domain:
            params.append(("d", encode_param(domain)))
        headers = {}
        if context:
            encoded = base64.urlsafe_b64encode(orjson.dumps(context)).decode()
            headers["X-Tryton-Context"] = encoded
        resp = self.session.get(f"{self.base}/{model}", params=params, headers=headers, timeout=60)
        resp.raise_for_status()
        records: list[dict[str, Any]] = decode_record(resp.json())
        return records


def ref(value: Any) -> int | None:
    """A Many2One as Tryton returns it (an id, or a dict with the id)."""
    if isinstance(value, dict):
        return int(value["id"])
    return None if value is None else int(value)


class Rates:
    """Tryton's rates: each currency's latest rate on or before a date, against a common base."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rates: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
        for row in rows:
            self.rates[row["currency"]["code"]].append(
                (date.fromisoformat(row["date"]), Decimal(row["rate"]))
            )
        for values in self.rates.values():
            values.sort()

    def rate(self, currency: str, on: date) -> Decimal:
        found = [r for d, r in self.rates[currency] if d <= on]
        assert found, f"no {currency} rate on {on}"
        return found[-1]

    def eur(self, amount: Decimal, currency: str, on: date) -> Decimal:
        """Currency.compute(from, amount, EUR) at ``on``, rounded as Tryton rounds."""
        if currency == "EUR":
            return amount
        value = amount * self.rate("EUR", on) / self.rate(currency, on)
        return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def recompute(rest: Rest, today: date) -> dict[int, dict[str, Any]]:
    """Every party's figures from Tryton's records, as docs/customer360.md defines them."""
    rates = Rates(rest.get("currency.currency.rate", ["date", "rate", "currency.code"]))
    out: dict[int, dict[str, Any]] = defaultdict(
        lambda: {
            "revenue": Decimal(0),
            "orders": 0,
            "last_order": None,
            "invoiced": Decimal(0),
            "paid": Decimal(0),
            "open": Decimal(0),
            "overdue": Decimal(0),
            "days_weighted": Decimal(0),
            "days_weight": Decimal(0),
        }
    )
    sale_fields = ["party", "state", "sale_date", "total_amount", "currency.code"]
    for sale in rest.get("sale.sale", sale_fields):
        if sale["state"] not in ("confirmed", "processing", "done"):
            continue  # draft, quotation and cancelled sales are not orders
        p = out[ref(sale["party"]) or 0]
        day = date.fromisoformat(sale["sale_date"])
        p["revenue"] += rates.eur(Decimal(sale["total_amount"]), sale["currency"]["code"], day)
        p["orders"] += 1
        p["last_order"] = max(filter(None, [p["last_order"], day]))
    allocations: dict[int, list[tuple[date, Decimal]]] = defaultdict(list)
    for payment in rest.get(
        "account.payment",
        ["state", "amount", "date", "line.move_origin"],
        [["kind", "=", "receivable"]],
    ):
        origin = (payment.get("line") or {}).get("move_origin") or ""
        if payment["state"] == "succeeded" and origin.startswith("account.invoice,"):
            invoice = int(origin.split(",")[1])
            paid = (date.fromisoformat(payment["date"]), Decimal(payment["amount"]))
            allocations[invoice].append(paid)
    for line in rest.get(
        "account.move.line",
        ["invoice_payment", "date", "amount", "move.state"],
        [["move.journal.type", "=", "cash"], ["account.type.receivable", "=", True]],
    ):
        if line["invoice_payment"] is not None and line["move"]["state"] == "posted":
            allocations[ref(line["invoice_payment"]) or 0].append(
                (date.fromisoformat(line["date"]), -Decimal(line["amount"]))
            )
    for inv in rest.get(
        "account.invoice",
        [
            "party",
            "state",
            "invoice_date",
            "total_amount",
            "amount_to_pay",
            "currency.code",
            "lines_to_pay.maturity_date",
        ],
        [["type", "=", "out"]],
        with_payment=False,
    ):
        if inv["state"] not in ("posted", "paid"):
            continue
        p = out[ref(inv["party"]) or 0]
        cur, issued = inv["currency"]["code"], date.fromisoformat(inv["invoice_date"])
        total, open_doc = Decimal(inv["total_amount"]), Decimal(inv["amount_to_pay"])
        allocs = allocations.get(inv["id"], [])
        total_eur = rates.eur(total, cur, issued)
        paid_eur = [rates.eur(amount, cur, day) for day, amount in allocs]
        if open_doc == 0:
            open_eur = Decimal(0)
        elif sum(a for _d, a in allocs) == total - open_doc:
            open_eur = total_eur - sum(paid_eur, Decimal(0))  # what the ledger holds open
        else:
            open_eur = rates.eur(open_doc, cur, issued)
        p["invoiced"] += total_eur
        p["paid"] += sum(paid_eur, Decimal(0))
        p["open"] += open_eur
        due = [date.fromisoformat(m["maturity_date"]) for m in inv["lines_to_pay"]]
        if open_eur > 0 and due and due[0] < today:
            p["overdue"] += open_eur
        for (day, _amount), eur in zip(allocs, paid_eur, strict=True):
            if eur > 0:
                p["days_weighted"] += eur * max((day - issued).days, 0)
                p["days_weight"] += eur
    return out


@pytest.fixture(scope="module")
def synced(
    tryton_server: TrytonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The seeded database with the 360 additions, synced into a fresh store."""
    seeded = tryton_server.script("seed_360", SCRIPT)
    work = tmp_path_factory.mktemp("concord360")
    store_url = f"sqlite:///{work / 'concord.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("CONCORD_TEST_TRYTON_KEY", tryton_server.key)
    config = write_config(work / "concord.yaml", tryton_server, store_url, seeded["timezone"])
    try:
        report = run_sync(load_config(config), RunOptions(trigger="test"))
        store = Store(store_url)
        try:
            with store.engine.connect() as conn:
                rows = list(whole_rows(conn))
                staged = set(
                    conn.execute(
                        select(t.raw_records.c.source_id).where(
                            t.raw_records.c.entity == "customers"
                        )
                    ).scalars()
                )
        finally:
            store.dispose()
        yield {"seeded": seeded, "report": report, "rows": rows, "staged": staged}
    finally:
        mp.undo()


def parties_of(row: dict[str, Any]) -> list[int]:
    return [int(key.split(":")[1]) for key in row["source_ids"]]


def test_every_360_figure_equals_the_figure_recomputed_from_trytons_records(
    synced: dict[str, Any], tryton_server: TrytonServer
) -> None:
    today = date.fromisoformat(synced["seeded"]["today"])
    expected = recompute(Rest(tryton_server), today)
    assert synced["rows"], "no customer-360 rows"
    for row in synced["rows"]:
        want: dict[str, Any] = defaultdict(Decimal)
        last: date | None = None
        for party in parties_of(row):
            for key, value in expected.get(party, {}).items():
                if key == "last_order":
                    last = max(filter(None, [last, value])) if value else last
                else:
                    want[key] += value
        name = row["name"]["value"]
        assert row["as_of"] == today.isoformat(), name
        assert Decimal(row["lifetime_revenue"]) == want["revenue"].quantize(CENT), name
        assert row["orders_count"] == want["orders"], name
        assert (row["last_order_at"] or "")[:10] == (last.isoformat() if last else ""), name
        assert Decimal(row["invoiced_total"]) == want["invoiced"].quantize(CENT), name
        assert Decimal(row["paid_total"]) == want["paid"].quantize(CENT), name
        assert Decimal(row["open_balance"]) == want["open"].quantize(CENT), name
        assert Decimal(row["overdue_balance"]) == want["overdue"].quantize(CENT), name
        days = (
            round(float(want["days_weighted"] / want["days_weight"]), 1)
            if want["days_weight"]
            else None
        )
        assert row["average_days_to_pay"] == days, name


def test_open_balance_equals_trytons_own_receivable_per_customer(
    synced: dict[str, Any], tryton_server: TrytonServer
) -> None:
    receivable = {
        p["id"]: Decimal(p["receivable"])
        for p in Rest(tryton_server).get("party.party", ["receivable"])
    }
    for row in synced["rows"]:
        theirs = sum((receivable[p] for p in parties_of(row)), Decimal(0))
        assert Decimal(row["open_balance"]) == theirs, row["name"]["value"]
        assert Decimal(row["erp_receivable"]) == theirs
        assert Decimal(row["erp_receivable_difference"]) == 0
    check = synced["report"]["stages"]["build_360"]["all"]["receivable"]
    assert check["checked"] == len(synced["staged"]) and check["differing"] == 0
    assert Decimal(check["difference"]) == 0


def test_the_company_party_is_excluded_and_quotations_are_not_orders(
    synced: dict[str, Any],
) -> None:
    seeded = synced["seeded"]
    assert str(seeded["company_party"]) not in synced["staged"]
    excluded = synced["report"]["stages"]["extract"]["tryton/customers"]["excluded"]
    assert excluded == {"the ERP's own company": 1}
    quoting = next(r for r in synced["rows"] if seeded["quotation_party"] in parties_of(r))
    assert quoting["open_quotes"] == 1


def test_the_seeded_cases_are_there(synced: dict[str, Any], tryton_server: TrytonServer) -> None:
    seeded = synced["seeded"]
    assert seeded["paid_in_full_state"] == "paid"  # the Pay wizard reconciled it
    by_name = {r["name"]["value"]: r for r in synced["rows"]}
    usd = by_name["Gamma Tools Oy"]
    assert [f["currency"] for f in usd["fx"]] == ["USD"] and usd["fx"][0]["source"] == "tryton"
    # the invoice due today is open, not overdue. The party's template invoice, dated the
    # server's (UTC) day, is overdue while the company's zone is a day ahead of UTC
    (inv,) = Rest(tryton_server).get(
        "account.invoice",
        ["amount_to_pay", "lines_to_pay.maturity_date"],
        [["id", "=", seeded["due_today"]]],
    )
    assert [m["maturity_date"] for m in inv["lines_to_pay"]] == [seeded["today"]]
    due_today = by_name["Hotel Kilo AG"]
    not_overdue = Decimal(due_today["open_balance"]) - Decimal(due_today["overdue_balance"])
    assert Decimal(inv["amount_to_pay"]) > 0 and not_overdue >= Decimal(inv["amount_to_pay"])
    (late,) = Rest(tryton_server).get(
        "account.invoice", ["amount_to_pay"], [["id", "=", seeded["overdue"]]]
    )
    assert Decimal(late["amount_to_pay"]) == Decimal("91.00")  # 96 - 5
    assert Decimal(by_name["Delta Foods BV"]["overdue_balance"]) >= Decimal("91.00")
    report = synced["report"]["stages"]["build_360"]["all"]
    assert report["missing_rates"] == {} and report["timezone"] == seeded["timezone"]
