"""Survivorship: which source record's value becomes the golden customer's, field by field.

Each golden field (name, email, phone, address, tax id) is chosen among the cluster's records
per ``identity.survivorship``. The default, ``original``, keeps the original record: the
highest source in ``source_priority``, then the oldest record (the ERP's creation time; records
without one come after dated ones), then the most complete record and value, then the record
key, so the choice depends only on things that do not change when a duplicate is edited and a
golden value changes only when its winning record (or that record's value) changes. The other
strategies (``source_priority``, ``most_recent``, ``most_complete``, ``most_frequent``) break
ties by the most recent record. Every chosen value keeps the record key that supplied it and the
rule that decided, so ``concord customers show`` can say both. E-mails and phones are also
unioned over all records (the 360's ``emails`` and ``phones``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from concord.config import FieldSurvivorship, GoldenField, SurvivorshipConfig
from concord.identity.normalise import fold
from concord.model import SourcedValue

GOLDEN_FIELDS: tuple[GoldenField, ...] = ("name", "email", "phone", "address", "tax_id")
_NOT_CONTENT = frozenset({"ref", "created_at", "updated_at", "crossrefs", "is_person"})
_NOTHING: tuple[Any, ...] = (None, "", [], {})


@dataclass(slots=True)
class Candidate:
    """One source record's value for a golden field, with what survivorship ranks it by."""

    value: Any
    source_key: str
    source: str
    updated_at: datetime
    created_at: datetime | None = None
    record_completeness: int = 0


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
        if _empty(value):
            continue
        yield fname, value


def _empty(value: Any) -> bool:
    if value in _NOTHING:
        return True
    return isinstance(value, dict) and not any(v not in (None, "") for v in value.values())


def completeness(data: dict[str, Any]) -> int:
    """How many content fields of a canonical customer record are filled."""
    return sum(1 for k, v in data.items() if v not in _NOTHING and k not in _NOT_CONTENT)


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, fold(str(v)).strip()) for k, v in value.items() if v))
    return fold(str(value)).strip()


def _completeness(value: Any) -> tuple[int, int]:
    if isinstance(value, dict):
        parts = [str(v) for v in value.values() if v not in (None, "")]
        return len(parts), sum(len(p) for p in parts)
    return 1, len(str(value).strip())


def _recency(c: Candidate) -> tuple[datetime, str]:
    return (c.updated_at, c.source_key)


def _original(candidates: list[Candidate], rule: FieldSurvivorship) -> tuple[Candidate, str]:
    """Source priority, oldest record, most complete record and value, record key."""
    rank = {s: i for i, s in enumerate(rule.sources)}
    worst = len(rank)

    def key(c: Candidate) -> tuple[Any, ...]:
        created = c.created_at.timestamp() if c.created_at is not None else float("inf")
        record, value = -c.record_completeness, tuple(-n for n in _completeness(c.value))
        return (rank.get(c.source, worst), created, record, value, c.source_key)

    ordered = sorted(candidates, key=key)
    best = ordered[0]
    k1, k2 = key(best), key(ordered[1])
    if k1[0] != k2[0]:
        return best, f"source priority ({best.source} first)"
    if k1[1] != k2[1]:
        assert best.created_at is not None
        return best, f"oldest record (created {best.created_at.date().isoformat()})"
    if k1[2:4] != k2[2:4]:
        return best, "most complete"
    return best, "first record key (records alike)"


def choose(candidates: list[Candidate], rule: FieldSurvivorship) -> Candidate:
    """The surviving value among a golden field's candidates."""
    return choose_with_rule(candidates, rule)[0]


def choose_with_rule(candidates: list[Candidate], rule: FieldSurvivorship) -> tuple[Candidate, str]:
    """The surviving candidate and the rule that decided, as ``customers show`` prints it."""
    if len(candidates) == 1:
        return candidates[0], "only record"
    if rule.strategy == "original":
        return _original(candidates, rule)
    if rule.strategy == "source_priority":
        rank = {s: i for i, s in enumerate(rule.sources)}
        worst = len(rank)
        best = min(
            candidates,
            key=lambda c: (rank.get(c.source, worst), -c.updated_at.timestamp(), c.source_key),
        )
        return best, f"source priority ({best.source} first), then most recent"
    ranking: dict[str, Callable[[Candidate], Any]] = {
        "most_complete": lambda c: (_completeness(c.value), _recency(c)),
        "most_recent": _recency,
    }
    if rule.strategy == "most_frequent":
        counts = Counter(_comparable(c.value) for c in candidates)
        ranking["most_frequent"] = lambda c: (counts[_comparable(c.value)], _recency(c))
    best = max(candidates, key=ranking[rule.strategy])
    return best, rule.strategy.replace("_", " ")


def field_rules(rules: SurvivorshipConfig) -> dict[GoldenField, FieldSurvivorship]:
    """The rule of every golden field (resolve once, use for every customer)."""
    return {fname: rules.for_field(fname) for fname in GOLDEN_FIELDS}


def golden_values(
    candidates: dict[GoldenField, list[Candidate]],
    rules: SurvivorshipConfig | dict[GoldenField, FieldSurvivorship],
) -> dict[GoldenField, SourcedValue]:
    """Survivorship per field as configured; each value keeps its record and rule."""
    per_field = field_rules(rules) if isinstance(rules, SurvivorshipConfig) else rules
    out: dict[GoldenField, SourcedValue] = {}
    for fname in GOLDEN_FIELDS:
        found = candidates.get(fname)
        if found:
            best, why = choose_with_rule(found, per_field[fname])
            out[fname] = SourcedValue(value=best.value, source=best.source_key, rule=why)
    return out
