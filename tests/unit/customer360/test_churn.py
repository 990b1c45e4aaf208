"""MBG/NBD (Batislam, Denizel & Filiztekin 2007): likelihood, recovery, one-time buyers, checks."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from concord.customer360.churn import (
    FALLBACK,
    MODEL,
    FitError,
    History,
    MbgParams,
    fit,
    gradient,
    log_likelihood,
    p_alive,
    score,
)
from tests.unit.customer360.simulation import simulate

REPO = Path(__file__).resolve().parents[3]
TRUTH = MbgParams(r=0.5, alpha=6.0, a=0.6, b=3.0)


@pytest.mark.parametrize(
    ("true", "n", "horizon", "seed"),
    [(TRUTH, 8000, 52.0, 2), (MbgParams(1.2, 10.0, 0.4, 2.5), 8000, 78.0, 3)],
)
def test_fit_recovers_the_parameters_data_was_simulated_with(
    true: MbgParams, n: int, horizon: float, seed: int
) -> None:
    got = fit(simulate(true, n, horizon, seed=seed))
    assert got.r == pytest.approx(true.r, rel=0.15)
    assert got.alpha == pytest.approx(true.alpha, rel=0.2)
    assert got.a == pytest.approx(true.a, rel=0.3)
    assert got.b == pytest.approx(true.b, rel=0.35)


def test_log_likelihood_of_a_one_time_buyer_matches_the_closed_form() -> None:
    # x = 0: P = (alpha/(alpha+T))^r * b/(a+b) + (a/(a+b)) (dropped at the first purchase)
    p = TRUTH
    x, t_x, age = (np.array([v], dtype=np.float64) for v in (0.0, 0.0, 10.0))
    alive = (p.alpha / (p.alpha + 10.0)) ** p.r * p.b / (p.a + p.b)
    dead = p.a / (p.a + p.b)
    assert log_likelihood(p, x, t_x, age)[0] == pytest.approx(math.log(alive + dead))


def test_the_gradient_matches_finite_differences() -> None:
    sim = simulate(TRUTH, 300, 52.0, seed=4)
    x, t_x, age = (
        np.array([getattr(h, k) for h in sim], dtype=np.float64) for k in ("x", "t_x", "T")
    )
    logp = np.log([0.7, 5.0, 0.8, 2.0])

    def total(lp: np.ndarray) -> float:
        return float(log_likelihood(MbgParams(*np.exp(lp)), x, t_x, age).sum())

    analytic = gradient(MbgParams(*np.exp(logp)), x, t_x, age).sum(axis=1)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6
        numeric = (total(logp + step) - total(logp - step)) / 2e-6
        assert analytic[i] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_a_one_time_buyers_risk_grows_with_time_since_the_purchase() -> None:
    risks = [1 - p_alive(TRUTH, x=0, t_x=0.0, T=weeks) for weeks in (1, 4, 26, 52, 110)]
    assert all(a < b for a, b in itertools.pairwise(risks))
    assert risks[0] > 0.0  # unlike BG/NBD, a one-time buyer may already be gone
    assert risks[-1] > 2 * risks[0]


def test_p_alive_falls_as_the_silence_since_the_last_purchase_grows() -> None:
    recent = p_alive(TRUTH, x=5, t_x=30.0, T=32.0)
    silent = p_alive(TRUTH, x=5, t_x=5.0, T=32.0)
    assert 0.0 < silent < recent <= 1.0


def test_small_bases_fall_back_to_the_recency_heuristic_and_say_so() -> None:
    histories = {f"c{i}": History(x=i % 3, t_x=float(i), T=40.0) for i in range(10)}
    scores = score(histories, min_repeat_customers=30)
    assert scores.model == FALLBACK
    assert "fewer than 30" in scores.reason
    assert scores.params is None
    assert scores.p_alive["c9"] > scores.p_alive["c3"]  # bought later, same T
    assert all(0.0 <= v <= 1.0 for v in scores.p_alive.values())


def test_a_one_time_buyers_fallback_risk_grows_with_time_too() -> None:
    base = {f"r{i}": History(x=2, t_x=8.0, T=10.0) for i in range(5)}
    scores = score(
        {**base, "new": History(0, 0.0, 2.0), "old": History(0, 0.0, 110.0)},
        min_repeat_customers=30,
    )
    assert scores.p_alive["old"] < scores.p_alive["new"] < 1.0


def test_large_bases_are_scored_with_the_fitted_model() -> None:
    sim = simulate(TRUTH, 3000, 39.0, seed=5)
    scores = score({str(i): h for i, h in enumerate(sim)}, min_repeat_customers=30)
    assert scores.model == MODEL, scores.reason
    assert scores.params is not None
    assert all(0.0 <= v <= 1.0 for v in scores.p_alive.values())


def degenerate_base() -> dict[str, History]:
    """Every repeat purchase on the day of the first one: nothing tells the rate."""
    repeaters = {f"r{i}": History(x=1 + i % 4, t_x=0.0, T=30.0 + i) for i in range(60)}
    return {**repeaters, **{f"o{i}": History(0, 0.0, 20.0 + i) for i in range(40)}}


def test_a_degenerate_base_fails_the_checks_and_falls_back_without_an_exception() -> None:
    with pytest.raises(FitError, match=r"converge|bound"):
        fit(list(degenerate_base().values()))
    scores = score(degenerate_base(), min_repeat_customers=30)
    assert scores.model == FALLBACK
    assert "MBG/NBD fit failed its checks" in scores.reason
    assert all(0.0 <= v <= 1.0 for v in scores.p_alive.values())


def test_the_fit_ignores_the_order_customers_come_in() -> None:
    sim = simulate(TRUTH, 2000, 52.0, seed=9)
    forward = fit(sim)
    backward = fit(list(reversed(sim)))
    assert forward == backward


FIT_SCRIPT = """
import json, sys
from concord.customer360.churn import fit
from tests.unit.customer360.simulation import simulate
from tests.unit.customer360.test_churn import TRUTH
histories = simulate(TRUTH, 3000, 52.0, seed=11)
order = sys.argv[1]
if order == "shuffled":
    import random
    random.Random(4).shuffle(histories)
print(json.dumps(fit(histories).as_dict()))
"""


def test_two_processes_give_identical_parameters() -> None:
    runs = []
    for seed, order in (("1", "sorted"), ("987", "shuffled")):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", FIT_SCRIPT, order],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env=env,
            timeout=120,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    here = fit(simulate(TRUTH, 3000, 52.0, seed=11)).as_dict()
    for name in ("r", "alpha", "a", "b"):
        assert runs[0][name] == pytest.approx(runs[1][name], abs=1e-9, rel=0)
        assert here[name] == pytest.approx(runs[0][name], abs=1e-9, rel=0)


def test_a_recent_fit_scores_the_base_without_refitting_until_refit_days_pass() -> None:
    from datetime import date, timedelta

    from concord.customer360.churn import LastFit

    histories = {str(i): h for i, h in enumerate(simulate(TRUTH, 3000, 39.0, seed=5))}
    fitted_day = date(2026, 11, 20)
    first = score(histories, 30, None, today=fitted_day, refit_days=7)
    assert first.params is not None and first.fitted == fitted_day
    last = LastFit(first.params, fitted_day, first.reason)
    assert LastFit.of(last.as_dict()) == last
    kept = score(histories, 30, last, today=fitted_day + timedelta(days=6), refit_days=7)
    assert (kept.params, kept.fitted, kept.reason) == (first.params, fitted_day, first.reason)
    older = {k: History(h.x, h.t_x, h.T + 1.0) for k, h in histories.items()}
    refit = score(older, 30, last, today=fitted_day + timedelta(days=7), refit_days=7)
    assert refit.fitted == fitted_day + timedelta(days=7) and refit.params != first.params
    # a warm start lands where a cold one does, within the optimiser's tolerance
    cold = fit(list(older.values()))
    assert refit.params is not None
    assert math.isclose(refit.params.r, cold.r, rel_tol=1e-4)
    assert math.isclose(refit.params.b, cold.b, rel_tol=1e-4)
    every = score(histories, 30, last, today=fitted_day + timedelta(days=1), refit_days=0)
    assert every.fitted == fitted_day + timedelta(days=1)


def test_a_failed_fit_is_not_tried_again_until_refit_days_pass() -> None:
    from datetime import date, timedelta

    from concord.customer360.churn import LastFit

    day = date(2026, 11, 20)
    failed = score(degenerate_base(), 30, None, today=day, refit_days=7)
    assert failed.model == FALLBACK and failed.fitted == day and failed.params is None
    last = LastFit.of(LastFit(None, day, failed.reason).as_dict())
    assert last is not None and last.params is None
    again = score(degenerate_base(), 30, last, today=day + timedelta(days=3), refit_days=7)
    assert (again.model, again.reason, again.fitted) == (FALLBACK, failed.reason, day)
    assert again.p_alive == failed.p_alive
    retried = score(degenerate_base(), 30, last, today=day + timedelta(days=7), refit_days=7)
    assert retried.fitted == day + timedelta(days=7)
