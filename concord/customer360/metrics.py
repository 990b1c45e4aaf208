"""Customer-360 figures per golden customer: orders, revenue, invoices, allocations, shipments.

Documents stream out of the canonical tables joined to the identity links (never all in memory)
and each is converted to the base currency at its own business date (``concord.customer360.fx``).
What counts is decided by the status meanings of ``concord.model``: orders in a revenue status
make revenue and the order count, draft and quote never do, cancelled never anything; invoices
count when posted or paid. A payment is an allocation: money on its date against one invoice.
Each billed invoice is settled with its allocations (``settle``): paid is what was allocated,
open what the ERP says is still open, and what keeps ``invoiced = paid + open`` from holding is
named in ``gaps`` (exchange differences, allocations the ERP has not booked, settlements without
a known allocation), so the 360 says why it does not add up rather than hiding it. Each source
record also keeps its open balance in the ERP's own currency for the receivable check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, DateTime, and_, case, func, select, type_coerce

from concord.config import GoldenField
from concord.customer360.dates import BusinessCalendar
from concord.customer360.fx import Converted, FxTable
from concord.identity.survivorship import Candidate, completeness, golden_candidates
from concord.model import (
    ALLOCATED,
    BILLED,
    ORDER_MEANING,
    CustomerNumber,
    OrderStatus,
    SourcedValue,
    record_key,
)
from concord.store import tables as t
from concord.utc import parse_time

CENT = Decimal("0.01")
ZERO = Decimal(0)
STREAM = 20_000

GAP_FX = "exchange difference on settled foreign-currency invoices"
GAP_NOT_BOOKED = "allocated, but the ERP still shows it open (payment not booked in the ledger)"
GAP_NO_ALLOCATION = "settled in the ERP without an allocation concord knows (credit, write-off)"
GAP_NOT_PULLED = "paid against invoices concord did not pull"
GAP_ERP_FIGURE = "open balance is the ERP's own receivable: the source has no invoices"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class RecordBalance:
    """One source record's open balance, for the check against the ERP's receivable."""

    source: str
    erp_receivable: Decimal | None = None
    erp_currency: str | None = None
    has_invoices: bool = True
    open_erp: Decimal = ZERO  # documents' open balance in the ERP's currency
    open_base: Decimal = ZERO
    unconverted: int = 0


@dataclass(slots=True)
class CustomerTotals:
    """One golden customer's records, survivorship candidates and summed figures (base)."""

    source_ids: list[str] = field(default_factory=list)
    candidates: dict[GoldenField, list[Candidate]] = field(default_factory=dict)
    countries: dict[str, str] = field(default_factory=dict)
    numbers: list[CustomerNumber] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)  # in record order, repeats included
    phones: list[str] = field(default_factory=list)
    records: dict[str, RecordBalance] = field(default_factory=dict)
    is_person: bool = False
    orders: int = 0
    revenue: Decimal = ZERO
    revenue_12m: Decimal = ZERO
    first_order: datetime | None = None  # naive UTC
    last_order: datetime | None = None  # naive UTC
    first_order_day: date | None = None
    last_order_day: date | None = None
    open_orders: int = 0
    open_quotes: int = 0
    in_transit: int = 0
    late_90d: int = 0
    invoiced: Decimal = ZERO
    paid: Decimal = ZERO
    open_balance: Decimal = ZERO
    overdue: Decimal = ZERO
    unallocated: Decimal = ZERO
    days_to_pay_weighted: Decimal = ZERO
    days_to_pay_weight: Decimal = ZERO
    # made on first use: most customers never need them
    gaps: dict[str, Decimal] | None = None
    fx_uses: dict[tuple[str, str], tuple[dict[str, None], int]] | None = None
    unconverted: dict[str, int] | None = None
    # for incremental builds: when a figure next changes with time alone, the latest date money
    # was converted at, whether as_of's own rate was used, the conversions without a rate
    boundary_day: date | None = None  # revenue_12m or overdue changes once today is here
    boundary_at: datetime | None = None  # shipments_late_90d changes once as_of is past this
    fx_day: date | None = None
    today_fx: bool = False
    misses: Counter[tuple[str, date]] | None = None

    def edge_day(self, day: date) -> None:
        """A figure changes with time alone once the business date reaches ``day``."""
        if self.boundary_day is None or day < self.boundary_day:
            self.boundary_day = day

    def edge_at(self, moment: datetime) -> None:
        """A figure changes with time alone once ``as_of`` is past ``moment`` (aware UTC)."""
        if self.boundary_at is None or moment < self.boundary_at:
            self.boundary_at = moment

    def converting(self, fx: FxTable, day: date) -> None:
        """Before converting at ``day``: remember the date, count this customer's misses."""
        if self.fx_day is None or day > self.fx_day:
            self.fx_day = day
        if self.misses is None:
            self.misses = Counter()
        fx.tally = self.misses

    def gap(self, reason: str, amount: Decimal) -> None:
        """Add to the part of ``invoiced - paid - open`` explained by ``reason``."""
        if amount:
            gaps = self.gaps if self.gaps is not None else {}
            gaps[reason] = gaps.get(reason, ZERO) + amount
            self.gaps = gaps

    def used(self, currency: str, converted: Converted) -> None:
        """Remember which rate converted one document (for ``customers show``)."""
        if not converted.note:
            return
        uses = self.fx_uses if self.fx_uses is not None else {}
        key = (currency, converted.source)
        notes, count = uses.get(key, ({}, 0))
        notes[converted.note] = None
        uses[key] = (notes, count + 1)
        self.fx_uses = uses

    def left_out(self, currency: str) -> None:
        """Count a document no rate could convert."""
        missing = self.unconverted if self.unconverted is not None else {}
        missing[currency] = missing.get(currency, 0) + 1
        self.unconverted = missing


@dataclass
class Figures:
    """Everything ``aggregate`` needs besides the connection: rates, dates, sources."""

    fx: FxTable
    calendar: BusinessCalendar
    base: str
    as_of: datetime
    invoice_sources: frozenset[str] | None = None  # None: sources that have invoices stored

    @property
    def today(self) -> date:
        """The business date the figures are as of."""
        return self.calendar.today(self.as_of)


def _time(value: datetime | str | None) -> datetime | None:
    """A time out of SQL: aware or naive UTC (``_naive`` columns); SQLite may give text."""
    if isinstance(value, str):
        return parse_time(value)
    return value


def _money(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(value)


def _linked(table: Any, *cols: Any, only: Sequence[str] | None = None) -> Any:
    """``select`` of ``cols`` with each row's golden customer, via the identity links.

    ``only``: just these golden customers (an incremental build), through the links' index.
    """
    il = t.identity_links
    q = select(il.c.concord_id, *cols).select_from(
        table.join(il, and_(il.c.source == table.c.source, il.c.source_id == table.c.customer_id))
    )
    return q if only is None else q.where(il.c.concord_id.in_(only))


def _linked_records(*cols: Any, only: Sequence[str] | None = None) -> Any:
    """``select`` of ``cols`` of each linked customer record, with its golden customer.

    ``_linked`` for the customers themselves: they join the links on their own id.
    """
    c, il = t.customers, t.identity_links
    q = select(il.c.concord_id, *cols).select_from(
        c.join(il, and_(il.c.source == c.c.source, il.c.source_id == c.c.source_id))
    )
    return q if only is None else q.where(il.c.concord_id.in_(only))


def _in_base(
    a: CustomerTotals, figures: Figures, amount: Any, currency: str, day: date, source: str
) -> Decimal | None:
    """``amount`` in the base currency at ``day``'s rate, the rate remembered; None: no rate."""
    if currency == figures.base:
        return _money(amount)
    a.converting(figures.fx, day)
    converted = figures.fx.convert(_money(amount), currency, figures.base, day, source)
    figures.fx.tally = None
    if converted is None:
        a.left_out(currency)
        return None
    a.used(currency, converted)
    return converted.amount


def _stream(conn: Connection, query: Any) -> Any:
    """Rows of ``query`` in batches (the option is the statement's: the connection stays as is)."""
    return conn.execute(query, execution_options={"yield_per": STREAM})


def _naive(column: Any) -> Any:
    """A UTC time column read as naive UTC (no per-row conversion; the calendar knows it)."""
    return type_coerce(column, DateTime())


def collect(
    conn: Connection,
    accs: dict[str, CustomerTotals],
    figures: Figures,
    only: Sequence[str] | None = None,
) -> None:
    """Each golden customer's records: keys, numbers, candidates, contacts, ERP receivables.

    ``only``: just these golden customers (an incremental build).
    """
    c, il = t.customers, t.identity_links
    q = _linked_records(c.c.source, c.c.source_id, c.c.updated_at, c.c.data, only=only)
    q = q.order_by(il.c.concord_id, c.c.source, c.c.source_id)
    with_invoices = figures.invoice_sources
    if with_invoices is None:
        with_invoices = frozenset(
            conn.execute(select(t.invoices.c.source).distinct()).scalars().all()
        )
    for gid, source, sid, updated, data in _stream(conn, q):
        a = accs.setdefault(gid, CustomerTotals())
        ref = record_key(source, sid)
        a.source_ids.append(ref)
        created = parse_time(data["created_at"]) if data.get("created_at") else None
        when = _time(updated) or _EPOCH
        filled = completeness(data)
        for fname, value in golden_candidates(data):
            a.candidates.setdefault(fname, []).append(
                Candidate(value, ref, source, when, created, filled)
            )
        if data.get("country"):
            a.countries[ref] = data["country"]
        if data.get("number"):
            a.numbers.append(CustomerNumber(source=source, number=data["number"], record=ref))
        a.emails.extend(data.get("emails") or ())
        a.phones.extend(data.get("phones") or ())
        a.is_person = a.is_person or bool(data.get("is_person"))
        receivable = data.get("erp_receivable")
        a.records[ref] = RecordBalance(
            source=source,
            erp_receivable=None if receivable is None else Decimal(str(receivable)),
            erp_currency=data.get("erp_receivable_currency") or figures.base,
            has_invoices=source in with_invoices,
        )


def aggregate(
    conn: Connection,
    accs: dict[str, CustomerTotals],
    figures: Figures,
    only: Sequence[str] | None = None,
) -> None:
    """Add order, invoice, allocation and shipment figures as of ``figures.as_of``.

    ``only``: just these golden customers (``accs`` holds only them).
    """
    orders(conn, accs, figures, only)
    aggregate_billing(conn, accs, figures, only)


def aggregate_billing(
    conn: Connection,
    accs: dict[str, CustomerTotals],
    figures: Figures,
    only: Sequence[str] | None = None,
) -> None:
    """``aggregate`` but the orders: invoice, allocation, ERP balance and shipment figures.

    A build reads the orders of everyone first (the base's scores rest on them alone), then
    the rest a chunk of customers at a time.
    """
    invoices(conn, accs, figures, only)
    unallocated(conn, accs, figures, only)
    erp_balances(accs, figures, only)
    shipments(conn, accs, figures.as_of, only)


def linked_customers(conn: Connection, only: Sequence[str] | None = None) -> list[str]:
    """The golden customers ``collect`` reads records of (a linked customer row), in order."""
    il = t.identity_links
    q = _linked_records(only=only).distinct().order_by(il.c.concord_id)
    return list(_stream(conn, q).scalars())


def orders(
    conn: Connection,
    accs: dict[str, CustomerTotals],
    figures: Figures,
    only: Sequence[str] | None = None,
) -> None:
    """Revenue, order count, first and last order, open work and quotes, by status meaning."""
    o = t.orders
    q = _linked(
        o, o.c.source, o.c.status, _naive(o.c.ordered_at), o.c.currency, o.c.gross_total, only=only
    ).where(
        o.c.status.not_in([OrderStatus.DRAFT.value, OrderStatus.CANCELLED.value]),
        o.c.state.is_(None),  # deleted in the ERP (a tombstone): left out
    )
    year_ago = figures.today - timedelta(days=365)
    meanings = {status.value: meaning for status, meaning in ORDER_MEANING.items()}
    for gid, source, status, ordered_at, currency, gross in _stream(conn, q):
        a = accs.get(gid)
        if a is None:
            continue
        meaning = meanings[status]
        if meaning.is_open_work:
            a.open_orders += 1
        elif status == OrderStatus.QUOTE:
            a.open_quotes += 1
        if not meaning.is_revenue:
            continue
        at = _time(ordered_at)
        assert at is not None  # ordered_at is NOT NULL
        day = figures.calendar.date_of(at)
        revenue = _in_base(a, figures, gross, currency, day, source)
        if revenue is None:
            continue
        a.orders += 1
        a.revenue += revenue
        if day > year_ago:
            a.revenue_12m += revenue
            a.edge_day(day + timedelta(days=365))  # leaves the 12 months then
        if a.first_order is None or at < a.first_order:
            a.first_order, a.first_order_day = at, day
        if a.last_order is None or at > a.last_order:
            a.last_order, a.last_order_day = at, day


@dataclass(slots=True)
class Allocation:
    """One payment's money against an invoice, on its business date."""

    day: date
    currency: str
    amount: Decimal


@dataclass(slots=True)
class InvoiceRow:
    """One billed invoice with its allocations, as streamed."""

    gid: str
    source: str
    customer_id: str
    issued: date
    due: date | None
    currency: str
    total: Decimal
    open_amount: Decimal
    allocations: list[Allocation] = field(default_factory=list)


def _invoice_rows(
    conn: Connection, figures: Figures, only: Sequence[str] | None = None
) -> Iterator[InvoiceRow]:
    """Billed invoices, each with its completed allocations (one ordered join, streamed)."""
    inv, pay, il = t.invoices, t.payments, t.identity_links
    q = (
        select(
            il.c.concord_id,
            inv.c.source,
            inv.c.source_id,
            inv.c.customer_id,
            _naive(inv.c.issued_at),
            _naive(inv.c.due_at),
            inv.c.currency,
            inv.c.total,
            inv.c.open_amount,
            _naive(pay.c.paid_at),
            pay.c.currency,
            pay.c.amount,
        )
        .select_from(
            inv.join(
                il, and_(il.c.source == inv.c.source, il.c.source_id == inv.c.customer_id)
            ).outerjoin(
                pay,
                and_(
                    pay.c.source == inv.c.source,
                    pay.c.invoice_id == inv.c.source_id,
                    pay.c.status.in_([s.value for s in ALLOCATED]),
                    pay.c.state.is_(None),
                ),
            )
        )
        .where(inv.c.status.in_([s.value for s in BILLED]), inv.c.state.is_(None))
        .order_by(inv.c.source, inv.c.source_id)
    )
    if only is not None:
        q = q.where(il.c.concord_id.in_(only))
    current: InvoiceRow | None = None
    current_key: tuple[str, str] | None = None
    cal = figures.calendar
    for gid, source, sid, cust, issued, due, cur, total, open_amt, paid_at, pcur, amount in _stream(
        conn, q
    ):
        key = (source, sid)
        if key != current_key:
            if current is not None:
                yield current
            issued_at, due_at = _time(issued), _time(due)
            assert issued_at is not None  # issued_at is NOT NULL
            current_key = key
            current = InvoiceRow(
                gid,
                source,
                cust,
                cal.date_of(issued_at),
                cal.date_of(due_at) if due_at else None,
                cur,
                _money(total),
                _money(open_amt),
            )
        if paid_at is not None and current is not None:
            paid = _time(paid_at)
            assert paid is not None
            current.allocations.append(Allocation(cal.date_of(paid), pcur, _money(amount)))
    if current is not None:
        yield current


@dataclass(slots=True)
class Settled:
    """A billed invoice in one currency: total, what was allocated, what is still open."""

    total: Decimal
    paid: Decimal
    open: Decimal
    consistent: bool  # the allocations account for what the ERP shows settled
    conversions: list[tuple[str, Converted]]


def settle(row: InvoiceRow, to: str, fx: FxTable) -> Settled | None:
    """The invoice's figures in ``to``: each amount at its own date; None without a rate.

    Open is 0 when the ERP shows nothing open. When the allocations account exactly for what
    the ERP shows settled (in the invoice's currency), open is the total less the allocations,
    each at its own rate, which is what the ERP's ledger holds; otherwise it is the ERP's open
    amount at the invoice's rate.
    """
    total = fx.convert(row.total, row.currency, to, row.issued, row.source)
    if total is None:
        return None
    conversions = [(row.currency, total)]
    paid = ZERO
    allocated_here = ZERO
    same_currency = True
    for alloc in row.allocations:
        converted = fx.convert(alloc.amount, alloc.currency, to, alloc.day, row.source)
        if converted is None:
            return None
        conversions.append((alloc.currency, converted))
        paid += converted.amount
        same_currency = same_currency and alloc.currency == row.currency
        allocated_here += alloc.amount
    consistent = same_currency and allocated_here == row.total - row.open_amount
    if row.open_amount == 0:
        open_amount = ZERO
    elif consistent:
        open_amount = total.amount - paid
    else:
        converted_open = fx.convert(row.open_amount, row.currency, to, row.issued, row.source)
        if converted_open is None:
            return None
        open_amount = converted_open.amount
    return Settled(total.amount, paid, open_amount, consistent, conversions)


def _gap_reason(row: InvoiceRow, settled: Settled) -> str:
    if settled.consistent:
        return GAP_FX
    allocated = sum((a.amount for a in row.allocations), ZERO)
    return GAP_NOT_BOOKED if allocated > row.total - row.open_amount else GAP_NO_ALLOCATION


def _settle_for(a: CustomerTotals, row: InvoiceRow, to: str, fx: FxTable) -> Settled | None:
    """``settle``, remembering for ``a`` the latest date converted at and the misses."""
    if row.currency != to or any(alloc.currency != to for alloc in row.allocations):
        a.converting(fx, max([row.issued, *(alloc.day for alloc in row.allocations)]))
    try:
        return settle(row, to, fx)
    finally:
        fx.tally = None


def invoices(
    conn: Connection,
    accs: dict[str, CustomerTotals],
    figures: Figures,
    only: Sequence[str] | None = None,
) -> None:
    """Invoiced, paid (allocated), open, overdue and days to pay, invoice by invoice."""
    today = figures.today
    for row in _invoice_rows(conn, figures, only):
        a = accs.get(row.gid)
        if a is None:
            continue
        record = a.records.get(record_key(row.source, row.customer_id))
        settled = _settle_for(a, row, figures.base, figures.fx)
        if settled is None:
            a.left_out(row.currency)
            if record is not None:
                record.unconverted += 1
            continue
        for currency, converted in settled.conversions:
            a.used(currency, converted)
        a.invoiced += settled.total
        a.paid += settled.paid
        a.open_balance += settled.open
        a.gap(_gap_reason(row, settled), settled.total - settled.paid - settled.open)
        if settled.open > 0 and row.due is not None:
            if row.due < today:
                a.overdue += settled.open
            else:
                a.edge_day(row.due + timedelta(days=1))  # overdue from the day after
        for alloc, (_cur, in_base) in zip(row.allocations, settled.conversions[1:], strict=True):
            if in_base.amount > 0:
                days = max((alloc.day - row.issued).days, 0)
                a.days_to_pay_weighted += in_base.amount * days
                a.days_to_pay_weight += in_base.amount
        if record is None:
            continue
        record.open_base += settled.open
        if record.erp_receivable is not None and record.erp_currency != figures.base:
            in_erp = _settle_for(a, row, record.erp_currency or figures.base, figures.fx)
            if in_erp is None:
                record.unconverted += 1
            else:
                record.open_erp += in_erp.open
        else:
            record.open_erp += settled.open


def unallocated(
    conn: Connection,
    accs: dict[str, CustomerTotals],
    figures: Figures,
    only: Sequence[str] | None = None,
) -> None:
    """Completed payments not allocated to a billed invoice concord holds.

    A payment naming an invoice concord did not pull counts as paid (with its gap reason); one
    naming no invoice, or a draft or cancelled one, counts as unallocated money.
    """
    pay, inv, il = t.payments, t.invoices, t.identity_links
    q = (
        select(
            il.c.concord_id,
            pay.c.source,
            pay.c.invoice_id,
            _naive(pay.c.paid_at),
            pay.c.currency,
            pay.c.amount,
            inv.c.status,
        )
        .select_from(
            pay.join(
                il, and_(il.c.source == pay.c.source, il.c.source_id == pay.c.customer_id)
            ).outerjoin(
                inv,
                and_(
                    inv.c.source == pay.c.source,
                    inv.c.source_id == pay.c.invoice_id,
                    inv.c.state.is_(None),
                ),
            )
        )
        .where(
            pay.c.state.is_(None),
            pay.c.status.in_([s.value for s in ALLOCATED]),
            (inv.c.source_id.is_(None)) | (inv.c.status.not_in([s.value for s in BILLED])),
        )
    )
    if only is not None:
        q = q.where(il.c.concord_id.in_(only))
    for gid, source, invoice_id, paid_at, currency, amount, inv_status in _stream(conn, q):
        a = accs.get(gid)
        if a is None:
            continue
        at = _time(paid_at)
        assert at is not None  # paid_at is NOT NULL
        received = _in_base(a, figures, amount, currency, figures.calendar.date_of(at), source)
        if received is None:
            continue
        if invoice_id and inv_status is None:
            a.paid += received
            a.gap(GAP_NOT_PULLED, -received)
        else:
            a.unallocated += received


def erp_balances(
    accs: dict[str, CustomerTotals], figures: Figures, only: Sequence[str] | None = None
) -> None:
    """Records of sources without invoices take their open balance from the ERP's receivable."""
    today = figures.today
    for a in accs.values() if only is None else (accs[g] for g in only if g in accs):
        for record in a.records.values():
            if record.has_invoices or record.erp_receivable is None:
                continue
            currency = record.erp_currency or figures.base
            if currency != figures.base:
                a.today_fx = True  # the rate in force on as_of's date
            owed = _in_base(a, figures, record.erp_receivable, currency, today, record.source)
            if owed is None:
                continue
            a.open_balance += owed
            record.open_base = owed
            a.gap(GAP_ERP_FIGURE, -owed)


def shipments(
    conn: Connection,
    accs: dict[str, CustomerTotals],
    as_of: datetime,
    only: Sequence[str] | None = None,
) -> None:
    """Shipments in transit and late ones (promised in the last 90 days).

    Also when the late count next changes with time alone: an undelivered shipment turns late
    once ``as_of`` is past its promise, and a late (or possibly late) one leaves the 90 days
    once ``as_of`` is past its promise + 90 days.
    """
    sh = t.shipments
    window = timedelta(days=90)
    live = sh.c.status != "cancelled"
    late = and_(
        sh.c.promised_at >= as_of - window,
        live,
        ((sh.c.delivered_at.is_not(None)) & (sh.c.delivered_at > sh.c.promised_at))
        | ((sh.c.delivered_at.is_(None)) & (sh.c.promised_at < as_of)),
    )
    turns_late = and_(live, sh.c.delivered_at.is_(None), sh.c.promised_at >= as_of)
    may_count = and_(
        live,
        sh.c.promised_at >= as_of - window,
        sh.c.delivered_at.is_(None) | (sh.c.delivered_at > sh.c.promised_at),
    )
    q = (
        _linked(
            sh,
            func.sum(case((sh.c.status == "shipped", 1), else_=0)),
            func.sum(case((late, 1), else_=0)),
            func.min(case((turns_late, sh.c.promised_at), else_=None)),
            func.min(case((may_count, sh.c.promised_at), else_=None)),
            only=only,
        )
        .where(sh.c.state.is_(None))
        .group_by(t.identity_links.c.concord_id)
    )
    for gid, transit, late_n, turning, counting in conn.execute(q):
        a = accs.get(gid)
        if a is not None:
            a.in_transit += int(transit or 0)
            a.late_90d += int(late_n or 0)
            if turning is not None:
                a.edge_at(_aware(turning))
            if counting is not None:
                a.edge_at(_aware(counting) + window)


def _aware(value: datetime | str) -> datetime:
    """A time out of an aggregate (text on SQLite) as aware UTC."""
    at = _time(value)
    assert at is not None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def country_of(a: CustomerTotals, best: dict[GoldenField, SourcedValue]) -> str | None:
    """The country of the record that supplied the golden name (or address, or tax id)."""
    for fname in ("name", "address", "tax_id"):
        if fname in best and best[fname].source in a.countries:
            return a.countries[best[fname].source]
    return next((a.countries[k] for k in sorted(a.countries)), None)
