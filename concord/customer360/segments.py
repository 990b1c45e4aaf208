"""Segments of the customer base: RFM quintile scores, Pareto value tiers, lifecycle stages.

Scores are relative to the whole base at the business date ``today``: RFM scores rank buyers by
recency, frequency and revenue into quintiles; value tier A is the smallest set of customers
making 80% of revenue, B the next 15%, C the rest. Days count business dates.
"""

from __future__ import annotations

import operator
from datetime import date
from decimal import Decimal

import numpy as np

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
    # the rank of each value is bisect_left of the sorted values, for all at once (a night
    # scores every customer of the base three times)
    array = np.fromiter(values.values(), dtype=np.float64, count=n)
    below = np.searchsorted(np.sort(array), array, side="left")
    scores = 1 + np.minimum(4, (5 * below) // max(n - 1, 1))
    return dict(zip(values, scores.tolist(), strict=True))


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
    # the share before a customer compared as amounts, exactly (no division per customer)
    a_below, b_below = total * Decimal("0.80"), total * Decimal("0.95")
    tiers: dict[str, ValueTier] = {}
    running = Decimal(0)
    # by revenue, highest first, ties by id: a stable sort by revenue of the rows sorted by id
    by_revenue = sorted(sorted(revenue.items()), key=operator.itemgetter(1), reverse=True)
    for gid, rev in by_revenue:
        if rev <= 0 or total == 0:
            tiers[gid] = ValueTier.C
            continue
        before = running
        running += rev
        tiers[gid] = (
            ValueTier.A if before < a_below else ValueTier.B if before < b_below else ValueTier.C
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
