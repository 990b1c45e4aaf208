"""Customer-360 figures per golden customer: orders, revenue, balances, shipments, payments.

Sums and counts are computed in SQL over the canonical tables joined to identity links (the
store does the heavy lifting, grouped by golden customer and currency) and converted to the base
currency with the configured FX table; a currency without a rate is counted, not guessed. Each
golden customer's figures and survivorship candidates gather in one ``CustomerTotals``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from concord.config import GoldenField, PipelineConfig
from concord.identity.survivorship import Candidate, golden_candidates
from concord.model import SourcedValue, record_key
from concord.store import tables as t
from concord.store.types import money_or_zero
from concord.utc import as_utc, parse_time

CENT = Decimal("0.01")
REVENUE_STATUSES = ("confirmed", "shipped", "closed", "open")
OPEN_ORDER_STATUSES = ("open", "confirmed")
BILLED_STATUSES = ("posted", "paid")


@dataclass(slots=True)
class CustomerTotals:
    """One golden customer's records, survivorship candidates and summed figures."""

    source_ids: list[str] = field(default_factory=list)
    candidates: dict[GoldenField, list[Candidate]] = field(default_factory=dict)
    countries: dict[str, str] = field(default_factory=dict)
    is_person: bool = False
    orders: int = 0
    revenue: Decimal = Decimal(0)
    revenue_12m: Decimal = Decimal(0)
    first_order: datetime | None = None
    last_order: datetime | None = None
    open_orders: int = 0
    in_transit: int = 0
    late_90d: int = 0
    invoiced: Decimal = Decimal(0)
    open_balance: Decimal = Decimal(0)
    overdue: Decimal = Decimal(0)
    paid: Decimal = Decimal(0)
    days_to_pay_sum: float = 0.0
    days_to_pay_n: int = 0


class Fx:
    """Converts amounts to the base currency; counts amounts in currencies without a rate."""

    def __init__(self, config: PipelineConfig) -> None:
        self.base = config.base_currency
        self.rates = {**config.fx_rates, config.base_currency: Decimal(1)}
        self.unconverted: dict[str, int] = {}

    def __call__(self, amount: Decimal, currency: str) -> Decimal:
        """``amount`` in the base currency (0, and counted, without a rate)."""
        rate = self.rates.get(currency)
        if rate is None:
            self.unconverted[currency] = self.unconverted.get(currency, 0) + 1
            return Decimal(0)
        return amount * rate


def _linked(table: Any, *cols: Any) -> Any:
    """``select`` of ``cols`` with each row's golden customer, via the identity links."""
    il = t.identity_links
    return select(il.c.concord_id, *cols).select_from(
        table.join(il, and_(il.c.source == table.c.source, il.c.source_id == table.c.customer_id))
    )


def aggregate(conn: Connection, accs: dict[str, CustomerTotals], fx: Fx, as_of: datetime) -> None:
    """Add order, invoice, payment and shipment figures as of ``as_of`` to each customer."""
    o, inv, pay, sh = t.orders, t.invoices, t.payments, t.shipments
    year_ago = as_of - timedelta(days=365)
    counted = o.c.status.in_(REVENUE_STATUSES)
    q = _linked(
        o,
        o.c.currency,
        func.sum(case((counted, 1), else_=0)),
        func.sum(case((counted, o.c.gross_total), else_=0)),
        func.sum(case((and_(counted, o.c.ordered_at >= year_ago), o.c.gross_total), else_=0)),
        func.min(case((counted, o.c.ordered_at))),
        func.max(case((counted, o.c.ordered_at))),
        func.sum(case((o.c.status.in_(OPEN_ORDER_STATUSES), 1), else_=0)),
    ).group_by(t.identity_links.c.concord_id, o.c.currency)
    for gid, cur, n, rev, rev12, first, last, open_n in conn.execute(q):
        a = accs[gid]
        a.orders += int(n or 0)
        a.revenue += fx(money_or_zero(rev), cur)
        a.revenue_12m += fx(money_or_zero(rev12), cur)
        a.open_orders += int(open_n or 0)
        first, last = _time(first), _time(last)
        if first and (a.first_order is None or first < a.first_order):
            a.first_order = first
        if last and (a.last_order is None or last > a.last_order):
            a.last_order = last
    billed = inv.c.status.in_(BILLED_STATUSES)
    q = _linked(
        inv,
        inv.c.currency,
        func.sum(case((billed, inv.c.total), else_=0)),
        func.sum(case((billed, inv.c.open_amount), else_=0)),
        func.sum(case((and_(billed, inv.c.due_at < as_of), inv.c.open_amount), else_=0)),
    ).group_by(t.identity_links.c.concord_id, inv.c.currency)
    for gid, cur, total, open_amt, overdue in conn.execute(q):
        a = accs[gid]
        a.invoiced += fx(money_or_zero(total), cur)
        a.open_balance += fx(money_or_zero(open_amt), cur)
        a.overdue += fx(money_or_zero(overdue), cur)
    done = pay.c.status == "completed"
    q = _linked(pay, pay.c.currency, func.sum(case((done, pay.c.amount), else_=0))).group_by(
        t.identity_links.c.concord_id, pay.c.currency
    )
    for gid, cur, amount in conn.execute(q):
        accs[gid].paid += fx(money_or_zero(amount), cur)
    # Days to pay: completed payments against billed invoices of the same source.
    q = (
        select(t.identity_links.c.concord_id, inv.c.issued_at, pay.c.paid_at)
        .select_from(
            pay.join(
                inv, and_(inv.c.source == pay.c.source, inv.c.source_id == pay.c.invoice_id)
            ).join(
                t.identity_links,
                and_(
                    t.identity_links.c.source == inv.c.source,
                    t.identity_links.c.source_id == inv.c.customer_id,
                ),
            )
        )
        .where(done)
    )
    for gid, issued, paid_at in conn.execute(q):
        a = accs[gid]
        a.days_to_pay_sum += max((_time(paid_at) - _time(issued)).total_seconds(), 0) / 86400  # type: ignore[operator]
        a.days_to_pay_n += 1
    late = and_(
        sh.c.promised_at >= as_of - timedelta(days=90),
        sh.c.status != "cancelled",
        ((sh.c.delivered_at.is_not(None)) & (sh.c.delivered_at > sh.c.promised_at))
        | ((sh.c.delivered_at.is_(None)) & (sh.c.promised_at < as_of)),
    )
    q = _linked(
        sh,
        func.sum(case((sh.c.status == "shipped", 1), else_=0)),
        func.sum(case((late, 1), else_=0)),
    ).group_by(t.identity_links.c.concord_id)
    for gid, transit, late_n in conn.execute(q):
        accs[gid].in_transit += int(transit or 0)
        accs[gid].late_90d += int(late_n or 0)


def _time(value: datetime | str | None) -> datetime | None:
    """A time out of a SQL aggregate (SQLite gives text for MIN/MAX of a time column)."""
    return parse_time(value) if isinstance(value, str) else as_utc(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def collect(conn: Connection, accs: dict[str, CustomerTotals]) -> None:
    """Each golden customer's source records: keys, survivorship candidates, countries."""
    c, il = t.customers, t.identity_links
    q = select(il.c.concord_id, c.c.source, c.c.source_id, c.c.updated_at, c.c.data).select_from(
        c.join(il, and_(il.c.source == c.c.source, il.c.source_id == c.c.source_id))
    )
    for gid, source, sid, updated, data in conn.execution_options(yield_per=20_000).execute(q):
        a = accs[gid]
        ref = record_key(source, sid)
        a.source_ids.append(ref)
        when = _time(updated) or _EPOCH
        for fname, value in golden_candidates(data):
            a.candidates.setdefault(fname, []).append(Candidate(value, ref, source, when))
        if data.get("country"):
            a.countries[ref] = data["country"]
        a.is_person = a.is_person or bool(data.get("is_person"))


def country_of(a: CustomerTotals, best: dict[GoldenField, SourcedValue]) -> str | None:
    """The country of the record that supplied the golden name (or address, or tax id)."""
    for fname in ("name", "address", "tax_id"):
        if fname in best and best[fname].source in a.countries:
            return a.countries[best[fname].source]
    return next((a.countries[k] for k in sorted(a.countries)), None)
