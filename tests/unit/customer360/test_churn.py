"""BG/NBD (Fader, Hardie & Lee 2005): likelihood, parameter recovery, P(alive) and fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest

from concord.customer360.churn import (
    BgNbdParams,
    History,
    fit,
    log_likelihood,
    p_alive,
    score,
)
from tests.unit.customer360.simulation import simulate

CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)  # the paper's estimates


@pytest.mark.parametrize(
    ("true", "n", "horizon", "seed"),
    [(BgNbdParams(0.5, 6.0, 0.6, 3.0), 8000, 52.0, 2), (CDNOW, 15000, 39.0, 1)],
)
def test_fit_recovers_the_parameters_data_was_simulated_with(
    true: BgNbdParams, n: int, horizon: float, seed: int
) -> None:
    got = fit(simulate(true, n, horizon, seed=seed))
    assert got.r == pytest.approx(true.r, rel=0.15)
    assert got.alpha == pytest.approx(true.alpha, rel=0.2)
    assert got.a == pytest.approx(true.a, rel=0.3)
    assert got.b == pytest.approx(true.b, rel=0.35)


def test_log_likelihood_of_a_one_time_buyer_matches_the_closed_form() -> None:
    p = BgNbdParams(0.5, 6.0, 0.6, 3.0)
    x, t_x, age = (np.array([v], dtype=np.float64) for v in (0.0, 0.0, 10.0))
    expected = 0.5 * math.log(6.0) - 0.5 * math.log(16.0)  # (alpha / (alpha + T)) ** r
    assert log_likelihood(p, x, t_x, age)[0] == pytest.approx(expected)


def test_p_alive_falls_as_the_silence_since_the_last_purchase_grows() -> None:
    recent = p_alive(CDNOW, x=5, t_x=30.0, T=32.0)
    silent = p_alive(CDNOW, x=5, t_x=5.0, T=32.0)
    assert 0.0 < silent < recent <= 1.0
    assert p_alive(CDNOW, x=0, t_x=0.0, T=32.0) == 1.0


def test_small_bases_fall_back_to_the_recency_heuristic_and_say_so() -> None:
    histories = {f"c{i}": History(x=i % 3, t_x=float(i), T=40.0) for i in range(10)}
    scores = score(histories, min_repeat_customers=30)
    assert scores.model == "recency_heuristic"
    assert "fewer than 30" in scores.reason
    assert scores.params is None
    assert scores.p_alive["c9"] > scores.p_alive["c3"]  # bought later, same T
    assert all(0.0 <= v <= 1.0 for v in scores.p_alive.values())


def test_large_bases_are_scored_with_the_fitted_model() -> None:
    sim = simulate(CDNOW, 3000, 39.0, seed=5)
    scores = score({str(i): h for i, h in enumerate(sim)}, min_repeat_customers=30)
    assert scores.model == "bgnbd"
    assert scores.params is not None
    assert all(0.0 <= v <= 1.0 for v in scores.p_alive.values())
