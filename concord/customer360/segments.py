"""Segments of the customer base: RFM quintile scores, Pareto value tiers, lifecycle stages.

Scores are relative to the whole base at the business date ``today``: RFM scores rank buyers by
recency, frequency and revenue into quintiles; value tier A is the smallest set of customers
making 80% of revenue, B the next 15%, C the rest. Days count business dates.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date
from decimal import Decimal

from concord.customer360.metrics import CustomerTotals
from concord.model import LifecycleStage, ValueTier


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


def rfm_scores(accs: dict[str, CustomerTotals], today: date) -> dict[str, tuple[int, int, int]]:
    """RFM quintile scores (1-5) among customers with at least one revenue order."""
    buyers = {
        gid: (a, a.last_order_day)
        for gid, a in accs.items()
        if a.last_order_day is not None and a.orders > 0
    }
    recency = quintiles({gid: -float((today - last).days) for gid, (_a, last) in buyers.items()})
    frequency = quintiles({gid: float(a.orders) for gid, (a, _last) in buyers.items()})
    monetary = quintiles({gid: float(a.revenue) for gid, (a, _last) in buyers.items()})
    return {gid: (recency[gid], frequency[gid], monetary[gid]) for gid in buyers}


def value_tiers(revenue: dict[str, Decimal]) -> dict[str, ValueTier]:
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


def lifecycle_stage(a: CustomerTotals, today: date) -> LifecycleStage:
    """New (first order within 90 days), active, at risk, lapsed, or prospect (no order)."""
    if a.last_order_day is None or a.first_order_day is None:
        return LifecycleStage.PROSPECT
    if (today - a.first_order_day).days <= 90:
        return LifecycleStage.NEW
    since = (today - a.last_order_day).days
    if since <= 180:
        return LifecycleStage.ACTIVE
    if since <= 365:
        return LifecycleStage.AT_RISK
    return LifecycleStage.LAPSED
