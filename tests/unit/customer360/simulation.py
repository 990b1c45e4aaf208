"""Purchase histories drawn from the BG/NBD process itself, to test the fit against known truth."""

from __future__ import annotations

import math

import numpy as np

from concord.customer360.churn import BgNbdParams, History


def simulate(
    params: BgNbdParams,
    n: int,
    horizon: float,
    seed: int = 0,
) -> list[History]:
    """Histories drawn from the BG/NBD process itself (for tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    out: list[History] = []
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    drop = rng.beta(params.a, params.b, size=n)
    for i in range(n):
        t, x, last = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1.0 / lam[i]) if lam[i] > 0 else math.inf
            if t > horizon:
                break
            x, last = x + 1, t
            if rng.random() < drop[i]:
                break
        out.append(History(x, last, horizon))
    return out
