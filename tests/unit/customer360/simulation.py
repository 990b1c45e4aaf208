"""Purchase histories drawn from the MBG/NBD process itself, to test the fit against known truth."""

from __future__ import annotations

import math

import numpy as np

from concord.customer360.churn import History, MbgParams


def simulate(params: MbgParams, n: int, horizon: float, seed: int = 0) -> list[History]:
    """Histories from MBG/NBD: a customer may drop out at the first purchase and after each one."""
    rng = np.random.default_rng(seed)
    out: list[History] = []
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    drop = rng.beta(params.a, params.b, size=n)
    for i in range(n):
        t, x, last = 0.0, 0, 0.0
        while rng.random() >= drop[i]:  # still alive after this purchase
            t += rng.exponential(1.0 / lam[i]) if lam[i] > 0 else math.inf
            if t > horizon:
                break
            x, last = x + 1, t
        out.append(History(x, last, horizon))
    return out
