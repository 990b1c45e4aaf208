"""Build-360 stage: one customer-360 row per active golden customer, written when it changed.

Figures come from ``concord.customer360.metrics`` (documents at their own exchange rates and
business dates), scores from ``segments`` (RFM, value tier, lifecycle) and ``churn`` (MBG/NBD,
or the recency heuristic with the reason), the check against the ERPs' own receivables from
``receivable``, golden values from ``concord.identity.survivorship``. Every row says the
business date its figures are as of. A row is rewritten only when its content hash changes;
rows of customers no longer active are removed. The report lists what could not be converted
(per currency and date), the receivable differences and which churn model ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from concord.config import PipelineConfig
from concord.customer360.churn import ChurnScores, churn_scores
from concord.customer360.dates import BusinessCalendar
from concord.customer360.fx import fx_table
from concord.customer360.metrics import (
    CENT,
    CustomerTotals,
    Figures,
    aggregate,
    collect,
    country_of,
)
from concord.customer360.receivable import ReceivableCheck, check_records
from concord.customer360.segments import lifecycle_stage, rfm_scores, value_tiers
from concord.hashing import json_digest
from concord.identity.survivorship import field_rules, golden_values
from concord.model import (
    BalanceGap,
    ChurnExplanation,
    Customer360,
    FxUse,
    ValueTier,
)
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.reports import Build360Report
from concord.store import Store
from concord.store import tables as t
from concord.utc import as_utc, utcnow

BOOKKEEPING = ("updated_at", "content_hash")
"""Fields of a stored 360 row that change without its content changing."""
MISSING_LISTED = 20  # dates listed per currency without a rate


def row_hash(data: dict[str, Any]) -> str:
    """Stable hash of a 360 row's content (keys sorted), ignoring bookkeeping fields."""
    return json_digest({k: v for k, v in data.items() if k not in BOOKKEEPING})


def _churn(gid: str, scores: ChurnScores, period_days: int) -> ChurnExplanation | None:
    history = scores.histories.get(gid)
    if history is None:
        return None
    return ChurnExplanation(
        model=scores.model,
        params=scores.params.as_dict() if scores.params else {},
        x=history.x,
        t_x=round(history.t_x, 6),
        T=round(history.T, 6),
        period_days=period_days,
        reason=scores.reason,
    )


def _fx_uses(a: CustomerTotals) -> list[FxUse]:
    out = []
    for (currency, source), (notes, count) in sorted((a.fx_uses or {}).items()):
        listed = list(notes)[:5]
        if len(notes) > 5:
            listed.append(f"(+{len(notes) - 5} more)")
        out.append(FxUse(currency=currency, source=source, rates=listed, documents=count))
    return out


def _basis(a: CustomerTotals) -> str:
    from_erp = [not r.has_invoices and r.erp_receivable is not None for r in a.records.values()]
    if not any(from_erp):
        return "documents"
    return "erp_receivable" if all(from_erp) else "mixed"


def _missing(report: Build360Report, missing: dict[tuple[str, date], int]) -> None:
    by_currency: dict[str, list[str]] = {}
    for currency, day in sorted(missing):
        by_currency.setdefault(currency, []).append(day.isoformat())
    report.missing_rates = {}
    for currency, days in by_currency.items():
        more = len(days) - MISSING_LISTED
        listed = days[:MISSING_LISTED]
        report.missing_rates[currency] = [*listed, f"(+{more} more)"] if more > 0 else listed
    counts: dict[str, int] = {}
    for (currency, _day), n in missing.items():
        counts[currency] = counts.get(currency, 0) + n
    report.unconverted_currencies = counts


def compute(
    store: Store,
    config: PipelineConfig,
    as_of: datetime,
    report: Build360Report,
    invoice_sources: frozenset[str] | None = None,
) -> Iterator[Customer360]:
    """Compute every active golden customer's 360 row (not yet written)."""
    calendar = BusinessCalendar(config.timezone)
    accs: dict[str, CustomerTotals] = {}
    with store.engine.connect() as conn:
        fx = fx_table(conn, config)
        figures = Figures(fx, calendar, config.base_currency, as_of, invoice_sources)
        collect(conn, accs, figures)
        aggregate(conn, accs, figures)
    today = figures.today
    report.as_of = today.isoformat()
    report.timezone = config.timezone
    tiers = value_tiers({gid: a.revenue for gid, a in accs.items()})
    rfm = rfm_scores(accs, today)
    scores = churn_scores(accs, today, config)
    report.churn_model = scores.model
    report.churn_reason = scores.reason
    report.churn_params = scores.params.as_dict() if scores.params else None
    check = ReceivableCheck(config.base_currency)
    period_days = config.identity.churn.period_days
    rules = field_rules(config.identity.survivorship)
    for gid in sorted(accs):
        a = accs[gid]
        best = golden_values(a.candidates, rules)
        if "name" not in best:
            continue
        erp_receivable, erp_difference = check_records(
            gid, a, fx, config.base_currency, today, check
        )
        alive = scores.p_alive.get(gid)
        r_score, f_score, m_score = rfm.get(gid, (None, None, None))
        yield Customer360(
            concord_id=gid,
            name=best["name"],
            email=best.get("email"),
            phone=best.get("phone"),
            address=best.get("address"),
            tax_id=best.get("tax_id"),
            country=country_of(a, best),
            is_person=a.is_person,
            source_ids=sorted(a.source_ids),
            customer_numbers=sorted(a.numbers, key=lambda n: (n.source, n.number, n.record)),
            emails=list(dict.fromkeys(a.emails)),
            phones=list(dict.fromkeys(a.phones)),
            as_of=today,
            timezone=config.timezone,
            orders_count=a.orders,
            lifetime_revenue=a.revenue.quantize(CENT),
            revenue_12m=a.revenue_12m.quantize(CENT),
            average_order_value=(a.revenue / a.orders).quantize(CENT)
            if a.orders
            else Decimal("0.00"),
            first_order_at=as_utc(a.first_order),
            last_order_at=as_utc(a.last_order),
            days_since_last_order=(today - a.last_order_day).days if a.last_order_day else None,
            open_orders=a.open_orders,
            open_quotes=a.open_quotes,
            shipments_in_transit=a.in_transit,
            shipments_late_90d=a.late_90d,
            invoiced_total=a.invoiced.quantize(CENT),
            paid_total=a.paid.quantize(CENT),
            open_balance=a.open_balance.quantize(CENT),
            overdue_balance=a.overdue.quantize(CENT),
            average_days_to_pay=round(float(a.days_to_pay_weighted / a.days_to_pay_weight), 1)
            if a.days_to_pay_weight
            else None,
            unallocated_paid=a.unallocated.quantize(CENT),
            balance_gaps=[
                BalanceGap(reason=reason, amount=amount.quantize(CENT))
                for reason, amount in sorted((a.gaps or {}).items())
                if amount.quantize(CENT) != 0
            ],
            open_balance_basis=_basis(a),
            erp_receivable=None if erp_receivable is None else erp_receivable.quantize(CENT),
            erp_receivable_difference=None
            if erp_difference is None
            else erp_difference.quantize(CENT),
            fx=_fx_uses(a),
            unconverted=dict(sorted((a.unconverted or {}).items())),
            rfm_recency=r_score,
            rfm_frequency=f_score,
            rfm_monetary=m_score,
            value_tier=tiers.get(gid, ValueTier.C),
            lifecycle_stage=lifecycle_stage(a, today),
            p_alive=None if alive is None else round(alive, 4),
            churn_risk=None if alive is None else round(1.0 - alive, 4),
            churn=_churn(gid, scores, period_days),
            base_currency=config.base_currency,
            updated_at=as_of,
        )
    _missing(report, dict(fx.missing))
    report.receivable = check.as_dict()


def build(
    store: Store,
    config: PipelineConfig,
    as_of: datetime,
    run_id: str,
    invoice_sources: frozenset[str] | None = None,
) -> Build360Report:
    """Compute and write changed 360 rows; rows of customers no longer active are removed.

    ``invoice_sources`` are the sources with an invoices entity (their records' open balance
    comes from invoices, the others' from the ERP's receivable); None: those with invoices in
    the store.
    """
    report = Build360Report()
    c360 = t.customer360
    with store.engine.connect() as conn:
        existing = dict(conn.execute(select(c360.c.concord_id, c360.c.content_hash)).all())
    seen: set[str] = set()
    batch: list[dict[str, Any]] = []
    with store.begin() as conn:
        for row in compute(store, config, as_of, report, invoice_sources):
            report.customers += 1
            data = row.model_dump(mode="json")
            h = row_hash(data)
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


def build_360(ctx: RunContext) -> Build360Report:
    """The stage: compute and write the 360 rows as of the run's ``as_of``; record the report."""
    started = utcnow()
    invoice_sources = frozenset(
        source for (source, _entity), m in ctx.mappings.items() if m.entity == "invoices"
    )
    report = build(ctx.store, ctx.config, ctx.as_of, ctx.run_id, invoice_sources)
    record_stage(ctx, "build_360", "all", started, report)
    return report
