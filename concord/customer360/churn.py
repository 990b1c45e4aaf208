"""Churn risk from purchase histories: the BG/NBD model (Fader, Hardie & Lee 2005).

Each customer is summarised as (x, t_x, T): repeat purchases, time of the last purchase and age,
both measured from the first purchase in periods (weeks by default). While alive a customer buys
as a Poisson process with rate λ ~ Gamma(r, α); after each purchase they drop out with
probability p ~ Beta(a, b). ``fit`` finds (r, α, a, b) by maximum likelihood (scipy, on log
parameters so they stay positive); ``p_alive`` is the probability a customer with that history is
still active, and churn risk is ``1 - p_alive``. The model needs repeat buyers to say anything:
with fewer than ``min_repeat_customers`` of them (or when the fit fails) ``score`` falls back to a
recency heuristic, ``exp(-recency / (2 * typical gap))``, and says so in ``ChurnScores.model``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import gammaln

from concord.config import PipelineConfig
from concord.customer360.metrics import CustomerTotals

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """Fitted BG/NBD parameters: purchase rate Gamma(r, alpha), dropout Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True, slots=True)
class History:
    """One customer's purchases in periods: repeats ``x``, last at ``t_x``, observed for ``T``."""

    x: int
    t_x: float
    T: float


def log_likelihood(
    params: BgNbdParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,  # noqa: N803
) -> FloatArray:
    """Per-customer log-likelihood, equation (6) of Fader, Hardie & Lee (2005)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    a4 = np.full_like(x, -np.inf)
    a4[repeat] = (
        math.log(a) - np.log(b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    )
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)


def _arrays(histories: Sequence[History]) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = np.fromiter((h.x for h in histories), dtype=np.float64, count=len(histories))
    t_x = np.fromiter((h.t_x for h in histories), dtype=np.float64, count=len(histories))
    T = np.fromiter((h.T for h in histories), dtype=np.float64, count=len(histories))  # noqa: N806
    return x, t_x, T


def fit(histories: Sequence[History]) -> BgNbdParams:
    """Maximum-likelihood (r, alpha, a, b); raises ValueError when the optimiser fails."""
    if not histories:
        raise ValueError("no customers to fit")
    x, t_x, T = _arrays(histories)  # noqa: N806
    scale = float(np.mean(T)) or 1.0

    def nll(logp: FloatArray) -> float:
        r, alpha, a, b = np.exp(np.clip(logp, -20, 20))
        ll = log_likelihood(BgNbdParams(r, alpha, a, b), x, t_x, T)
        value = -float(np.sum(ll))
        return value if math.isfinite(value) else 1e300

    start = np.log(np.array([1.0, scale, 1.0, 1.0]))
    best = None
    for method in ("Nelder-Mead", "L-BFGS-B"):
        res = minimize(
            nll,
            start if best is None else best.x,
            method=method,
            options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8}
            if method == "Nelder-Mead"
            else {"maxiter": 2000},
        )
        if best is None or res.fun <= best.fun:
            best = res
    if best is None or not math.isfinite(float(best.fun)) or float(best.fun) >= 1e299:
        raise ValueError("BG/NBD fit did not converge")
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    return BgNbdParams(r, alpha, a, b)


def p_alive(params: BgNbdParams, x: float, t_x: float, T: float) -> float:  # noqa: N803
    """P(still active | x, t_x, T), equation (11) of the paper; 1.0 for one-time buyers."""
    if x <= 0:
        return 1.0
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_ratio = (r + x) * (math.log(alpha + T) - math.log(alpha + t_x))
    odds = math.log(a) - math.log(b + x - 1) + log_ratio
    if odds > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(odds))


def recency_p_alive(x: int, t_x: float, T: float, typical_gap: float) -> float:  # noqa: N803
    """Fallback: exp(-(time since last purchase) / (2 x the customer's or base's gap))."""
    gap = (t_x / x) if x > 0 else typical_gap
    gap = max(gap, typical_gap / 4, 1e-9)
    return math.exp(-max(T - t_x, 0.0) / (2.0 * gap))


@dataclass(frozen=True, slots=True)
class ChurnScores:
    """P(alive) per customer, which model produced them and the fitted parameters, if any."""

    p_alive: dict[str, float]
    model: str  # "bgnbd" | "recency_heuristic"
    params: BgNbdParams | None
    repeat_customers: int
    reason: str


def score(histories: dict[str, History], min_repeat_customers: int = 30) -> ChurnScores:
    """Fit BG/NBD on the base and score everyone; fall back to recency on small bases."""
    repeat = sum(1 for h in histories.values() if h.x > 0)
    reason = ""
    if repeat >= min_repeat_customers:
        try:
            params = fit(list(histories.values()))
        except ValueError as exc:
            reason = str(exc)
        else:
            return ChurnScores(
                {k: p_alive(params, h.x, h.t_x, h.T) for k, h in histories.items()},
                "bgnbd",
                params,
                repeat,
                f"fitted on {len(histories)} customers, {repeat} with repeat purchases",
            )
    else:
        reason = f"{repeat} repeat customers, fewer than {min_repeat_customers} needed to fit"
    gaps = [h.t_x / h.x for h in histories.values() if h.x > 0]
    typical = float(np.median(gaps)) if gaps else 8.0
    return ChurnScores(
        {k: recency_p_alive(h.x, h.t_x, h.T, typical) for k, h in histories.items()},
        "recency_heuristic",
        None,
        repeat,
        reason,
    )


def churn_scores(
    accs: dict[str, CustomerTotals], as_of: datetime, config: PipelineConfig
) -> ChurnScores:
    """BG/NBD (or the documented fallback) over every customer with an order."""
    period = 86400.0 * config.identity.churn.period_days
    histories = {
        gid: History(
            x=max(a.orders - 1, 0),
            t_x=(a.last_order - a.first_order).total_seconds() / period,
            T=max((as_of - a.first_order).total_seconds() / period, 0.0),
        )
        for gid, a in accs.items()
        if a.first_order is not None and a.last_order is not None and a.orders > 0
    }
    return score(histories, config.identity.churn.min_repeat_customers)
