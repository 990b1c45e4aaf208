"""Customer 360: one row per golden customer with the metrics finance and sales look at.

Sums and counts are computed in SQL over the canonical tables joined to identity links (the
store does the heavy lifting, grouped by golden customer and currency), converted to the base
currency with the configured FX table, then scored in Python: Pareto value tier, RFM quintiles,
lifecycle stage and churn risk (``concord.churn``: BG/NBD, or a recency heuristic on small bases;
the build report says which). Survivorship picks each golden value per ``identity.survivorship``
(source priority, most recent, most complete or most frequent) and keeps which source record
supplied it. A row is rewritten only when its content hash changes.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, and_, case, func, select

from concord import churn
from concord.config import FieldSurvivorship, GoldenField, PipelineConfig
from concord.identity import fold
from concord.model import Customer360, LifecycleStage, SourcedValue, ValueTier
from concord.store import Store
from concord.store import tables as t
from concord.store.types import money_or_zero

CENT = Decimal("0.01")
REVENUE_STATUSES = ("confirmed", "shipped", "closed", "open")
OPEN_ORDER_STATUSES = ("open", "confirmed")
BILLED_STATUSES = ("posted", "paid")


@dataclass(slots=True)
class Build360Report:
    customers: int = 0
    written: int = 0
    unchanged: int = 0
    unconverted_currencies: dict[str, int] = field(default_factory=dict)
    churn_model: str = ""
    churn_reason: str = ""
    churn_params: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "written": self.written,
            "unchanged": self.unchanged,
            "unconverted_currencies": dict(self.unconverted_currencies),
            "churn_model": self.churn_model,
            "churn_reason": self.churn_reason,
            "churn_params": self.churn_params,
        }


@dataclass(slots=True)
class Candidate:
    """One source record's value for a golden field, with what survivorship ranks it by."""

    value: Any
    source_key: str
    source: str
    updated_at: datetime


@dataclass(slots=True)
class _Acc:
    source_ids: list[str] = field(default_factory=list)
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
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


def content_hash(data: dict[str, Any]) -> str:
    """Stable hash of a row's content (keys sorted), ignoring bookkeeping fields."""
    body = {k: v for k, v in data.items() if k not in ("updated_at", "content_hash")}
    return hashlib.blake2b(
        orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str), digest_size=16
    ).hexdigest()


class _Fx:
    def __init__(self, config: PipelineConfig, report: Build360Report) -> None:
        self.base = config.base_currency
        self.rates = {**config.fx_rates, config.base_currency: Decimal(1)}
        self.report = report

    def __call__(self, amount: Decimal, currency: str) -> Decimal:
        rate = self.rates.get(currency)
        if rate is None:
            self.report.unconverted_currencies[currency] = (
                self.report.unconverted_currencies.get(currency, 0) + 1
            )
            return Decimal(0)
        return amount * rate


def _linked(table: Any, *cols: Any) -> Any:
    il = t.identity_links
    return select(il.c.concord_id, *cols).select_from(
        table.join(il, and_(il.c.source == table.c.source, il.c.source_id == table.c.customer_id))
    )


def _aggregate(conn: Connection, accs: dict[str, _Acc], fx: _Fx, as_of: datetime) -> None:
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
        first, last = _utc(first), _utc(last)
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
        a.days_to_pay_sum += max((_utc(paid_at) - _utc(issued)).total_seconds(), 0) / 86400  # type: ignore[operator]
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


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


GOLDEN_FIELDS: tuple[GoldenField, ...] = ("name", "email", "phone", "address", "tax_id")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, fold(str(v)).strip()) for k, v in value.items() if v))
    return fold(str(value)).strip()


def _completeness(value: Any) -> tuple[int, int]:
    if isinstance(value, dict):
        parts = [str(v) for v in value.values() if v not in (None, "")]
        return len(parts), sum(len(p) for p in parts)
    return 1, len(str(value).strip())


def choose(candidates: list[Candidate], rule: FieldSurvivorship) -> Candidate:
    """The surviving value among a golden field's candidates; ties go to the most recent."""

    def recency(c: Candidate) -> tuple[datetime, str]:
        return (c.updated_at, c.source_key)

    if rule.strategy == "source_priority":
        rank = {s: i for i, s in enumerate(rule.sources)}
        worst = len(rank)
        return min(
            candidates,
            key=lambda c: (rank.get(c.source, worst), -c.updated_at.timestamp(), c.source_key),
        )
    if rule.strategy == "most_complete":
        return max(candidates, key=lambda c: (_completeness(c.value), recency(c)))
    if rule.strategy == "most_frequent":
        counts = Counter(_comparable(c.value) for c in candidates)
        return max(candidates, key=lambda c: (counts[_comparable(c.value)], recency(c)))
    return max(candidates, key=recency)


def _collect(conn: Connection, accs: dict[str, _Acc]) -> None:
    c, il = t.customers, t.identity_links
    q = select(il.c.concord_id, c.c.source, c.c.source_id, c.c.updated_at, c.c.data).select_from(
        c.join(il, and_(il.c.source == c.c.source, il.c.source_id == c.c.source_id))
    )
    for gid, source, sid, updated, data in conn.execution_options(yield_per=20_000).execute(q):
        a = accs[gid]
        ref = f"{source}:{sid}"
        a.source_ids.append(ref)
        when = _utc(updated) or _EPOCH
        values = {
            "name": data.get("name"),
            "email": (data.get("emails") or [None])[0],
            "phone": (data.get("phones") or [None])[0],
            "address": (data.get("addresses") or [None])[0],
            "tax_id": data.get("tax_id"),
        }
        for fname, value in values.items():
            if value in (None, "", {}) or (
                isinstance(value, dict) and not any(v for v in value.values())
            ):
                continue
            a.candidates.setdefault(fname, []).append(Candidate(value, ref, source, when))
        if data.get("country"):
            a.countries[ref] = data["country"]
        a.is_person = a.is_person or bool(data.get("is_person"))


def golden_values(a: _Acc, config: PipelineConfig) -> dict[str, SourcedValue]:
    """Survivorship per field as configured; each value keeps the record that supplied it."""
    rules = config.identity.survivorship
    out: dict[str, SourcedValue] = {}
    for fname in GOLDEN_FIELDS:
        cands = a.candidates.get(fname)
        if cands:
            best = choose(cands, rules.for_field(fname))
            out[fname] = SourcedValue(value=best.value, source=best.source_key)
    return out


def _country(a: _Acc, best: dict[str, SourcedValue]) -> str | None:
    for fname in ("name", "address", "tax_id"):
        if fname in best and best[fname].source in a.countries:
            return a.countries[best[fname].source]
    return next((a.countries[k] for k in sorted(a.countries)), None)


def quintiles(values: dict[str, float]) -> dict[str, int]:
    """Score 1-5 by quintile of percentile rank (higher value, higher score).

    The percentile is the share of other customers strictly below, so equal values score alike,
    the lowest scores 1 and the highest 5; a lone customer scores a neutral 3.
    """
    n = len(values)
    if n == 1:
        return dict.fromkeys(values, 3)
    ordered = sorted(values.values())
    return {key: 1 + min(4, (5 * bisect_left(ordered, v)) // (n - 1)) for key, v in values.items()}


def rfm_scores(accs: dict[str, _Acc], as_of: datetime) -> dict[str, tuple[int, int, int]]:
    """RFM quintile scores (1-5) among customers with at least one order."""
    buyers = {gid: a for gid, a in accs.items() if a.last_order is not None and a.orders > 0}
    recency = quintiles(
        {gid: -float((as_of - a.last_order).days) for gid, a in buyers.items()}  # type: ignore[operator]
    )
    frequency = quintiles({gid: float(a.orders) for gid, a in buyers.items()})
    monetary = quintiles({gid: float(a.revenue) for gid, a in buyers.items()})
    return {gid: (recency[gid], frequency[gid], monetary[gid]) for gid in buyers}


def churn_scores(
    accs: dict[str, _Acc], as_of: datetime, config: PipelineConfig
) -> churn.ChurnScores:
    """BG/NBD (or the documented fallback) over every customer with an order."""
    period = 86400.0 * config.identity.churn.period_days
    histories = {
        gid: churn.History(
            x=max(a.orders - 1, 0),
            t_x=(a.last_order - a.first_order).total_seconds() / period,
            T=max((as_of - a.first_order).total_seconds() / period, 0.0),
        )
        for gid, a in accs.items()
        if a.first_order is not None and a.last_order is not None and a.orders > 0
    }
    return churn.score(histories, config.identity.churn.min_repeat_customers)


def _tiers(revenue: dict[str, Decimal]) -> dict[str, ValueTier]:
    """Pareto: A = smallest set making 80% of revenue, B = next 15%, C = the rest."""
    total = sum((r for r in revenue.values() if r > 0), Decimal(0))
    tiers: dict[str, ValueTier] = {}
    running = Decimal(0)
    for gid, rev in sorted(revenue.items(), key=lambda kv: (-kv[1], kv[0])):
        if rev <= 0 or total == 0:
            tiers[gid] = ValueTier.C
            continue
        share_before = running / total
        running += rev
        tiers[gid] = (
            ValueTier.A
            if share_before < Decimal("0.80")
            else ValueTier.B
            if share_before < Decimal("0.95")
            else ValueTier.C
        )
    return tiers


def _lifecycle(a: _Acc, as_of: datetime) -> LifecycleStage:
    if a.last_order is None or a.first_order is None:
        return LifecycleStage.PROSPECT
    if (as_of - a.first_order).days <= 90:
        return LifecycleStage.NEW
    since = (as_of - a.last_order).days
    if since <= 180:
        return LifecycleStage.ACTIVE
    if since <= 365:
        return LifecycleStage.AT_RISK
    return LifecycleStage.LAPSED


def compute(
    store: Store, config: PipelineConfig, as_of: datetime, report: Build360Report
) -> Iterator[Customer360]:
    """Compute every active golden customer's 360 row (not yet written)."""
    fx = _Fx(config, report)
    accs: dict[str, _Acc] = defaultdict(_Acc)
    with store.engine.connect() as conn:
        _collect(conn, accs)
        _aggregate(conn, accs, fx, as_of)
    tiers = _tiers({gid: a.revenue for gid, a in accs.items()})
    rfm = rfm_scores(accs, as_of)
    scores = churn_scores(accs, as_of, config)
    report.churn_model = scores.model
    report.churn_reason = scores.reason
    if scores.params is not None:
        p = scores.params
        report.churn_params = {
            "r": round(p.r, 6),
            "alpha": round(p.alpha, 6),
            "a": round(p.a, 6),
            "b": round(p.b, 6),
        }
    for gid in sorted(accs):
        a = accs[gid]
        best = golden_values(a, config)
        if "name" not in best:
            continue
        alive = scores.p_alive.get(gid)
        r_score, f_score, m_score = rfm.get(gid, (None, None, None))
        yield Customer360(
            concord_id=gid,
            name=best["name"],
            email=best.get("email"),
            phone=best.get("phone"),
            address=best.get("address"),
            tax_id=best.get("tax_id"),
            country=_country(a, best),
            is_person=a.is_person,
            source_ids=sorted(a.source_ids),
            orders_count=a.orders,
            lifetime_revenue=a.revenue.quantize(CENT),
            revenue_12m=a.revenue_12m.quantize(CENT),
            average_order_value=(a.revenue / a.orders).quantize(CENT)
            if a.orders
            else Decimal("0.00"),
            first_order_at=a.first_order,
            last_order_at=a.last_order,
            days_since_last_order=(as_of - a.last_order).days if a.last_order else None,
            open_orders=a.open_orders,
            shipments_in_transit=a.in_transit,
            shipments_late_90d=a.late_90d,
            invoiced_total=a.invoiced.quantize(CENT),
            paid_total=a.paid.quantize(CENT),
            open_balance=a.open_balance.quantize(CENT),
            overdue_balance=a.overdue.quantize(CENT),
            average_days_to_pay=round(a.days_to_pay_sum / a.days_to_pay_n, 1)
            if a.days_to_pay_n
            else None,
            rfm_recency=r_score,
            rfm_frequency=f_score,
            rfm_monetary=m_score,
            value_tier=tiers.get(gid, ValueTier.C),
            lifecycle_stage=_lifecycle(a, as_of),
            p_alive=None if alive is None else round(alive, 4),
            churn_risk=None if alive is None else round(1.0 - alive, 4),
            base_currency=config.base_currency,
            updated_at=as_of,
        )


def build(store: Store, config: PipelineConfig, as_of: datetime, run_id: str) -> Build360Report:
    """Compute and write changed 360 rows; rows of customers no longer active are removed."""
    report = Build360Report()
    c360 = t.customer360
    with store.engine.connect() as conn:
        existing = dict(conn.execute(select(c360.c.concord_id, c360.c.content_hash)).all())
    seen: set[str] = set()
    batch: list[dict[str, Any]] = []
    with store.begin() as conn:
        for row in compute(store, config, as_of, report):
            report.customers += 1
            data = row.model_dump(mode="json")
            h = content_hash(data)
            seen.add(row.concord_id)
            if existing.get(row.concord_id) == h:
                report.unchanged += 1
                continue
            data["content_hash"] = h
            batch.append(
                {
                    "concord_id": row.concord_id,
                    "name": str(row.name.value)[:300],
                    "data": data,
                    "content_hash": h,
                    "value_tier": row.value_tier.value,
                    "updated_at": as_of,
                    "run_id": run_id,
                }
            )
            if len(batch) >= 2000:
                store.upsert(conn, c360, batch, ["concord_id"])
                report.written += len(batch)
                batch = []
        store.upsert(conn, c360, batch, ["concord_id"])
        report.written += len(batch)
        gone = set(existing) - seen
        if gone:
            conn.execute(c360.delete().where(c360.c.concord_id.in_(sorted(gone))))
    return report
