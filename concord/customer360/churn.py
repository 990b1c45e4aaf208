"""Churn risk from purchase histories: the MBG/NBD model (Batislam, Denizel & Filiztekin 2007).

Each customer is summarised as (x, t_x, T) in periods (weeks by default), counted in business
days: ``x`` repeat purchases (orders after the first), ``t_x`` the time of the last purchase and
``T`` the time since the first, both from the first purchase. While alive a customer buys as a
Poisson process with rate λ ~ Gamma(r, α); at the first purchase and after every later one they
drop out with probability p ~ Beta(a, b). Unlike BG/NBD (Fader, Hardie & Lee 2005), which can
only lose a customer after a *repeat* purchase and so gives every one-time buyer P(alive) = 1,
MBG/NBD lets a one-time buyer be gone: their P(alive) falls as time since the purchase grows.

``fit`` is maximum likelihood over log parameters with bounds (L-BFGS-B), on the distinct
histories in sorted order with their counts, so the same data give the same parameters in any
process; it is checked (converged, finite, no parameter at a bound) and raises ``FitError``
otherwise. ``score`` fits the base and scores everyone; with fewer than ``min_repeat_customers``
repeat buyers, or when the fit fails its checks, it falls back to the recency heuristic
``exp(-(T - t_x) / (2 * gap))`` (gap: the customer's mean time between purchases, for a one-time
buyer the base's median) and gives the reason, which the run report carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln

from concord.config import PipelineConfig
from concord.customer360.metrics import CustomerTotals

FloatArray = NDArray[np.float64]
MODEL = "mbgnbd"
FALLBACK = "recency_heuristic"
LOG_BOUND = math.log(1e4)  # each parameter (α in units of the mean age) within [1e-4, 1e4]
AT_BOUND = 1e-3  # a fitted log parameter this close to a bound means the data cannot pin it
GRADIENT_TOLERANCE = 1e-5  # a line search that stops this flat is at the optimum


class FitError(ValueError):
    """The fit failed one of its checks; the message says which."""


@dataclass(frozen=True, slots=True)
class MbgParams:
    """Fitted MBG/NBD parameters: purchase rate Gamma(r, alpha), dropout Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        """The parameters by name (for reports and ``customers show``)."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True, slots=True)
class History:
    """One customer's purchases in periods: repeats ``x``, last at ``t_x``, observed for ``T``."""

    x: int
    t_x: float
    T: float


def log_likelihood(
    params: MbgParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,  # noqa: N803
) -> FloatArray:
    """Per-customer log-likelihood of the MBG/NBD model."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
    a3 = -(r + x) * np.log(alpha + T)
    _log_ratio, a4 = _dropout_odds(params, x, t_x, T)
    return np.asarray(a1 + a2 + a3 + np.logaddexp(a4, 0.0), dtype=np.float64)


def _dropout_odds(
    params: MbgParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,  # noqa: N803
) -> tuple[FloatArray, FloatArray]:
    """log((α+T)/(α+t_x)) and the log odds of having dropped out after the last purchase."""
    log_ratio = np.log(params.alpha + T) - np.log(params.alpha + t_x)
    return log_ratio, math.log(params.a) - np.log(params.b + x) + (params.r + x) * log_ratio


def gradient(
    params: MbgParams,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,  # noqa: N803
) -> FloatArray:
    """Per-customer derivative of ``log_likelihood`` by (log r, log alpha, log a, log b)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_ratio, a4 = _dropout_odds(params, x, t_x, T)
    s = expit(a4)  # d log(1 + e^a4) / d a4
    d_r = digamma(r + x) - digamma(r) + math.log(alpha) - np.log(alpha + T) + s * log_ratio
    d_alpha = (
        r / alpha - (r + x) / (alpha + T) + s * (r + x) * (1 / (alpha + T) - 1 / (alpha + t_x))
    )
    d_a = digamma(a + b) - digamma(a + b + x + 1) + s / a
    d_b = digamma(a + b) + digamma(b + x + 1) - digamma(b) - digamma(a + b + x + 1) - s / (b + x)
    return np.stack([r * d_r, alpha * d_alpha, a * d_a, b * d_b])


def _distinct(histories: list[History]) -> tuple[FloatArray, FloatArray]:
    """Distinct (x, t_x, T) rows in sorted order and how many customers share each."""
    rows = np.array([(h.x, h.t_x, h.T) for h in histories], dtype=np.float64)
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return unique, counts.astype(np.float64)


def _start(start: MbgParams | None, scale: float) -> FloatArray:
    """Where the optimiser starts: the previous night's optimum (a few steps away), else 1s."""
    if start is None:
        return np.zeros(4)
    values = (start.r, start.alpha / scale, start.a, start.b)
    if not all(math.isfinite(v) and v > 0 for v in values):
        return np.zeros(4)
    logp = np.log(np.asarray(values, dtype=np.float64))
    return np.asarray(np.clip(logp, -LOG_BOUND + 2 * AT_BOUND, LOG_BOUND - 2 * AT_BOUND))


def fit(histories: list[History], start: MbgParams | None = None) -> MbgParams:
    """Maximum-likelihood (r, alpha, a, b), bounded and checked; ``FitError`` when it fails.

    ``start`` (the last build's parameters) only saves iterations: the tolerances put the
    optimum it finds within rounding of a cold start's, and a build and a full computation
    of the same night start from the same point, so they agree exactly.
    """
    if not histories:
        raise FitError("no customers to fit")
    rows, weights = _distinct(histories)
    scale = float(np.dot(weights, rows[:, 2]) / weights.sum()) or 1.0
    x, t_x, T = rows[:, 0], rows[:, 1] / scale, rows[:, 2] / scale  # noqa: N806
    total = float(weights.sum())

    def nll(logp: FloatArray) -> tuple[float, FloatArray]:
        params = MbgParams(*(float(v) for v in np.exp(logp)))
        value = -float(np.dot(weights, log_likelihood(params, x, t_x, T))) / total
        grad = -(gradient(params, x, t_x, T) @ weights) / total
        if not math.isfinite(value) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros(4)
        return value, grad

    result = minimize(
        nll,
        _start(start, scale),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
        options={"maxiter": 3000, "ftol": 1e-15, "gtol": 1e-10},
    )
    if not math.isfinite(float(result.fun)) or float(result.fun) >= 1e299:
        raise FitError("the likelihood is not finite at the optimum")
    logp = np.asarray(result.x, dtype=np.float64)
    steepest = float(np.max(np.abs(np.asarray(result.jac, dtype=np.float64))))
    if not result.success and steepest > GRADIENT_TOLERANCE:
        raise FitError(
            f"the optimiser did not converge: {result.message} (gradient {steepest:.2g})"
        )
    names = ("r", "alpha", "a", "b")
    stuck = [n for n, v in zip(names, logp, strict=True) if LOG_BOUND - abs(v) < AT_BOUND]
    if stuck:
        raise FitError(
            f"implausible fit: {', '.join(stuck)} at the bound of its range (the data cannot "
            "tell it, e.g. repeat purchases on the day of the first)"
        )
    r, alpha, a, b = (float(v) for v in np.exp(logp))
    return MbgParams(r, alpha * scale, a, b)


def p_alive(params: MbgParams, x: float, t_x: float, T: float) -> float:  # noqa: N803
    """P(still active | x, t_x, T): 1 / (1 + a/(b+x) * ((α+T)/(α+t_x))^(r+x))."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds = (
        math.log(a) - math.log(b + x) + (r + x) * (math.log(alpha + T) - math.log(alpha + t_x))
    )
    if log_odds > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(log_odds))


def recency_p_alive(x: int, t_x: float, T: float, typical_gap: float) -> float:  # noqa: N803
    """Fallback: exp(-(time since last purchase) / (2 x the customer's or base's gap))."""
    gap = (t_x / x) if x > 0 and t_x > 0 else typical_gap
    gap = max(gap, typical_gap / 4, 1e-9)
    return math.exp(-max(T - t_x, 0.0) / (2.0 * gap))


@dataclass(frozen=True, slots=True)
class ChurnScores:
    """P(alive) per customer, the model that produced them, its parameters and why."""

    p_alive: dict[str, float]
    model: str
    params: MbgParams | None
    repeat_customers: int
    reason: str
    histories: dict[str, History]
    fitted: date | None = None  # the business date the parameters were fitted on


@dataclass(frozen=True, slots=True)
class LastFit:
    """A previous build's fit: its parameters (None: it failed its checks), date and reason."""

    params: MbgParams | None
    fitted: date
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """For the build's record (``customer360_builds.churn_params``)."""
        params = self.params.as_dict() if self.params else {}
        return {**params, "fitted": self.fitted.isoformat(), "reason": self.reason}

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> LastFit | None:
        """From ``as_dict``'s form; None when nothing (or an older form) is stored."""
        if not stored or "fitted" not in stored:
            return None
        params = (
            MbgParams(*(float(stored[k]) for k in ("r", "alpha", "a", "b")))
            if "r" in stored
            else None
        )
        return cls(params, date.fromisoformat(str(stored["fitted"])), str(stored["reason"]))


def _scored(params: MbgParams, ordered: Mapping[str, History]) -> dict[str, float]:
    scores = {k: p_alive(params, h.x, h.t_x, h.T) for k, h in ordered.items()}
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in scores.values()):
        raise FitError("P(alive) outside [0, 1] for some customer")
    return scores


def score(
    histories: Mapping[str, History],
    min_repeat_customers: int = 30,
    last: LastFit | None = None,
    *,
    today: date | None = None,
    refit_days: int = 0,
) -> ChurnScores:
    """Fit MBG/NBD on the base and score everyone; else recency, saying why.

    A fit ``last`` made fewer than ``refit_days`` business days before ``today`` scores the
    base without refitting (the parameters of a population move slowly; a fit over every
    customer is most of a quiet night's work), or, when it failed its checks, the fallback
    scores it again without another try; an older one is where the new fit starts.
    """
    keys = sorted(histories)
    ordered = {k: histories[k] for k in keys}
    repeat = sum(1 for h in ordered.values() if h.x > 0)
    tried: date | None = None
    if repeat >= min_repeat_customers:
        age = (today - last.fitted).days if last is not None and today is not None else -1
        if last is not None and 0 <= age < refit_days:
            if last.params is None:
                return _fallback(ordered, repeat, last.reason, last.fitted)
            try:
                scores = _scored(last.params, ordered)
            except (FitError, ValueError, OverflowError, ZeroDivisionError):
                pass  # the kept parameters no longer score this base: refit
            else:
                return ChurnScores(
                    scores, MODEL, last.params, repeat, last.reason, ordered, last.fitted
                )
        tried = today
        try:
            params = fit(list(ordered.values()), last.params if last else None)
            scores = _scored(params, ordered)
        except (FitError, ValueError, OverflowError, ZeroDivisionError) as exc:
            reason = f"MBG/NBD fit failed its checks: {exc}"
        else:
            when = f" {today.isoformat()}" if today is not None else ""
            return ChurnScores(
                scores,
                MODEL,
                params,
                repeat,
                f"fitted{when} on {len(ordered)} customers, {repeat} with repeat purchases",
                ordered,
                today,
            )
    else:
        reason = f"{repeat} repeat customers, fewer than {min_repeat_customers} needed to fit"
    return _fallback(ordered, repeat, reason, tried)


def _fallback(
    ordered: dict[str, History], repeat: int, reason: str, tried: date | None
) -> ChurnScores:
    """The recency heuristic over the base; ``tried``: the date a fit failed (kept as such)."""
    gaps = [h.t_x / h.x for h in ordered.values() if h.x > 0 and h.t_x > 0]
    typical = float(np.median(gaps)) if gaps else 8.0
    return ChurnScores(
        {k: recency_p_alive(h.x, h.t_x, h.T, typical) for k, h in ordered.items()},
        FALLBACK,
        None,
        repeat,
        reason,
        ordered,
        tried,
    )


def churn_scores(
    accs: Mapping[str, CustomerTotals],
    today: date,
    config: PipelineConfig,
    last: LastFit | None = None,
) -> ChurnScores:
    """MBG/NBD (or the documented fallback) over every customer with a revenue order.

    ``last``: the previous build's fit, kept for ``churn.refit_days`` (``score``).
    """
    period = float(config.identity.churn.period_days)
    histories = {
        gid: History(
            x=max(a.orders - 1, 0),
            t_x=(a.last_order_day - a.first_order_day).days / period,
            T=max((today - a.first_order_day).days, 0) / period,
        )
        for gid, a in accs.items()
        if a.first_order_day is not None and a.last_order_day is not None and a.orders > 0
    }
    churn = config.identity.churn
    return score(
        histories, churn.min_repeat_customers, last, today=today, refit_days=churn.refit_days
    )
