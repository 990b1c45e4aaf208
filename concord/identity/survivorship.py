"""Survivorship: which source record's value becomes the golden customer's, field by field.

Each golden field (name, email, phone, address, tax id) is chosen among the cluster's records
per ``identity.survivorship``: source priority, most recent, most complete or most frequent,
ties going to the most recent. The chosen value keeps the record key that supplied it, so
``concord customers show`` can say where each value came from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from concord.config import FieldSurvivorship, GoldenField, SurvivorshipConfig
from concord.identity.normalise import fold
from concord.model import SourcedValue

GOLDEN_FIELDS: tuple[GoldenField, ...] = ("name", "email", "phone", "address", "tax_id")


@dataclass(slots=True)
class Candidate:
    """One source record's value for a golden field, with what survivorship ranks it by."""

    value: Any
    source_key: str
    source: str
    updated_at: datetime


def golden_candidates(data: dict[str, Any]) -> Iterator[tuple[GoldenField, Any]]:
    """The non-empty values a canonical customer offers for each golden field."""
    values: dict[GoldenField, Any] = {
        "name": data.get("name"),
        "email": (data.get("emails") or [None])[0],
        "phone": (data.get("phones") or [None])[0],
        "address": (data.get("addresses") or [None])[0],
        "tax_id": data.get("tax_id"),
    }
    for fname, value in values.items():
        if value in (None, "", {}) or (isinstance(value, dict) and not any(value.values())):
            continue
        yield fname, value


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, fold(str(v)).strip()) for k, v in value.items() if v))
    return fold(str(value)).strip()


def _completeness(value: Any) -> tuple[int, int]:
    if isinstance(value, dict):
        parts = [str(v) for v in value.values() if v not in (None, "")]
        return len(parts), sum(len(p) for p in parts)
    return 1, len(str(value).strip())


def choose(candidates: list[Candidate], rule: FieldSurvivorship) -> Candidate:
    """The surviving value among a golden field's candidates; ties go to the most recent."""

    def recency(c: Candidate) -> tuple[datetime, str]:
        return (c.updated_at, c.source_key)

    if rule.strategy == "source_priority":
        rank = {s: i for i, s in enumerate(rule.sources)}
        worst = len(rank)
        return min(
            candidates,
            key=lambda c: (rank.get(c.source, worst), -c.updated_at.timestamp(), c.source_key),
        )
    if rule.strategy == "most_complete":
        return max(candidates, key=lambda c: (_completeness(c.value), recency(c)))
    if rule.strategy == "most_frequent":
        counts = Counter(_comparable(c.value) for c in candidates)
        return max(candidates, key=lambda c: (counts[_comparable(c.value)], recency(c)))
    return max(candidates, key=recency)


def golden_values(
    candidates: dict[GoldenField, list[Candidate]], rules: SurvivorshipConfig
) -> dict[GoldenField, SourcedValue]:
    """Survivorship per field as configured; each value keeps the record that supplied it."""
    out: dict[GoldenField, SourcedValue] = {}
    for fname in GOLDEN_FIELDS:
        found = candidates.get(fname)
        if found:
            best = choose(found, rules.for_field(fname))
            out[fname] = SourcedValue(value=best.value, source=best.source_key)
    return out
