"""Build-360 stage: one customer-360 row per active golden customer, written when it changed.

Figures come from ``concord.customer360.metrics`` (SQL sums in the base currency), scores from
``segments`` (RFM, value tier, lifecycle) and ``churn`` (BG/NBD, or a recency heuristic on small
bases; the report says which), golden values from ``concord.identity.survivorship``. A row is
rewritten only when its content hash changes; rows of customers no longer active are removed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from concord.config import PipelineConfig
from concord.customer360.churn import churn_scores
from concord.customer360.metrics import CENT, CustomerTotals, Fx, aggregate, collect, country_of
from concord.customer360.segments import lifecycle_stage, rfm_scores, value_tiers
from concord.hashing import json_digest
from concord.identity.survivorship import golden_values
from concord.model import Customer360, ValueTier
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.reports import Build360Report
from concord.store import Store
from concord.store import tables as t
from concord.utc import utcnow

BOOKKEEPING = ("updated_at", "content_hash")
"""Fields of a stored 360 row that change without its content changing."""


def row_hash(data: dict[str, Any]) -> str:
    """Stable hash of a 360 row's content (keys sorted), ignoring bookkeeping fields."""
    return json_digest({k: v for k, v in data.items() if k not in BOOKKEEPING})


def compute(
    store: Store, config: PipelineConfig, as_of: datetime, report: Build360Report
) -> Iterator[Customer360]:
    """Compute every active golden customer's 360 row (not yet written)."""
    fx = Fx(config)
    accs: dict[str, CustomerTotals] = defaultdict(CustomerTotals)
    with store.engine.connect() as conn:
        collect(conn, accs)
        aggregate(conn, accs, fx, as_of)
    report.unconverted_currencies = dict(fx.unconverted)
    tiers = value_tiers({gid: a.revenue for gid, a in accs.items()})
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
        best = golden_values(a.candidates, config.identity.survivorship)
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
            country=country_of(a, best),
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
            lifecycle_stage=lifecycle_stage(a, as_of),
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
    report = build(ctx.store, ctx.config, ctx.as_of, ctx.run_id)
    record_stage(ctx, "build_360", "all", started, report)
    return report
