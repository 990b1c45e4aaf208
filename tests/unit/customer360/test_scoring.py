"""Survivorship choices, RFM quintiles and Pareto tiers on hand-built values."""

from __future__ import annotations

import random
from bisect import bisect_left
from datetime import UTC, datetime
from decimal import Decimal

from concord.config import FieldSurvivorship
from concord.customer360.segments import quintiles, value_tiers
from concord.identity.survivorship import Candidate, choose
from concord.model import ValueTier


def cand(value: object, key: str, day: int) -> Candidate:
    return Candidate(value, key, key.split(":")[0], datetime(2026, 1, day, tzinfo=UTC))


CANDS = [
    cand("Acme", "erp_a:1", 3),
    cand("ACME Corporation GmbH", "erp_b:1", 1),
    cand("acme", "erp_c:1", 2),
]


def test_most_recent_takes_the_latest_updated_record() -> None:
    assert choose(CANDS, FieldSurvivorship(strategy="most_recent")).source_key == "erp_a:1"


def test_source_priority_takes_the_highest_ranked_source() -> None:
    rule = FieldSurvivorship(strategy="source_priority", sources=["erp_c", "erp_b"])
    assert choose(CANDS, rule).source_key == "erp_c:1"
    unlisted = FieldSurvivorship(strategy="source_priority", sources=["erp_z"])
    assert choose(CANDS, unlisted).source_key == "erp_a:1"  # then most recent


def test_most_complete_takes_the_fullest_value() -> None:
    assert choose(CANDS, FieldSurvivorship(strategy="most_complete")).source_key == "erp_b:1"
    addresses = [
        cand({"line": "Main St 1", "city": "Berlin", "postcode": None}, "a:1", 5),
        cand({"line": "Main St 1", "city": "Berlin", "postcode": "10115"}, "b:1", 1),
    ]
    assert choose(addresses, FieldSurvivorship(strategy="most_complete")).source_key == "b:1"


def test_most_frequent_takes_the_value_most_records_agree_on() -> None:
    # "Acme" and "acme" agree once case is folded.
    assert choose(CANDS, FieldSurvivorship(strategy="most_frequent")).source_key == "erp_a:1"


def test_quintiles_score_lowest_1_highest_5_and_ties_alike() -> None:
    scores = quintiles({str(i): float(i) for i in range(100)})
    assert scores["0"] == 1 and scores["99"] == 5
    assert sum(1 for s in scores.values() if s == 5) == 20
    tied = quintiles({"a": 1.0, "b": 1.0, "c": 2.0})
    assert tied["a"] == tied["b"] == 1 and tied["c"] == 5
    assert quintiles({"only": 3.0}) == {"only": 3}


def test_pareto_tiers_a_makes_80_percent_b_the_next_15() -> None:
    revenue = {"big": Decimal(70), "mid": Decimal(20), "small": Decimal(6), "tiny": Decimal(4)}
    revenue["none"] = Decimal(0)
    tiers = value_tiers(revenue)
    assert tiers == {
        "big": ValueTier.A,
        "mid": ValueTier.A,
        "small": ValueTier.B,
        "tiny": ValueTier.C,
        "none": ValueTier.C,
    }


def test_quintiles_of_a_large_base_with_ties_are_the_bisect_ranks() -> None:
    rng = random.Random(5)
    values = {f"c{i}": float(rng.randint(0, 300)) for i in range(5000)}
    ordered = sorted(values.values())
    expected = {k: 1 + min(4, (5 * bisect_left(ordered, v)) // 4999) for k, v in values.items()}
    assert quintiles(values) == expected
    assert quintiles({}) == {}


def test_pareto_tiers_of_a_large_base_are_the_shares_before_each_customer() -> None:
    rng = random.Random(9)
    revenue = {f"c{i:04d}": Decimal(rng.randint(-50, 5000)) / 7 for i in range(3000)}
    total = sum((r for r in revenue.values() if r > 0), Decimal(0))
    expected: dict[str, ValueTier] = {}
    running = Decimal(0)
    for gid, rev in sorted(revenue.items(), key=lambda kv: (-kv[1], kv[0])):
        share = running / total
        running += rev if rev > 0 else 0
        expected[gid] = (
            ValueTier.C
            if rev <= 0
            else ValueTier.A
            if share < Decimal("0.80")
            else ValueTier.B
            if share < Decimal("0.95")
            else ValueTier.C
        )
    assert value_tiers(revenue) == expected
