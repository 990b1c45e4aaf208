"""Blocking for ``fuzzy_name``: which pairs of records are compared at all.

Records are grouped by the corroborating values the rule needs anyway (postcode, city, phone,
email domain, per country), so the cost grows with block sizes, not with n². A block larger than
``max_block_size`` is split by the first letters of the name key, and what is still too large is
cut into overlapping windows of name-sorted records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from concord.config import MatchRuleConfig
from concord.identity.normalise import CustomerRecord


def blocking_fields(rule: MatchRuleConfig) -> list[str]:
    """Corroborating fields worth a block of their own.

    A pair that agrees only on fields left out here cannot gather the evidence the rule needs
    (their weights sum below both minimums), so dropping their blocks loses no link the rule
    would make: with the default weights the large city blocks are not needed.
    """
    need = min(rule.min_corroboration, rule.person_min_corroboration)
    ordered = sorted(rule.corroborate.items(), key=lambda kv: kv[1])
    dropped: set[str] = set()
    total = 0.0
    for fname, weight in ordered:
        if total + weight < need:
            total += weight
            dropped.add(fname)
    return [f for f in rule.corroborate if f not in dropped]


def _block_keys(
    rec: CustomerRecord, rule: MatchRuleConfig, fields: Sequence[str]
) -> Iterator[tuple[str, ...]]:
    country = (rec.country or "") if rule.same_country else ""
    for fname in fields:
        values: tuple[str, ...]
        if fname == "postcode":
            values = rec.postcodes
        elif fname == "city":
            values = rec.cities
        elif fname == "phone":
            values = rec.phones
        else:
            values = rec.email_domains
        for v in values:
            yield (fname, country, v)
    if rule.unique_name_weight:
        yield ("name", country, rec.name_key)
    if rule.min_corroboration == 0 or rule.person_min_corroboration == 0:
        yield ("prefix", country, rec.name_key[:4])


def blocks(
    records: Sequence[CustomerRecord], rule: MatchRuleConfig, max_block: int
) -> Iterator[list[int]]:
    """Candidate groups (record indices): records sharing a corroborating value.

    A block larger than ``max_block`` is split (see the module docstring), so the number of
    comparisons grows near-linearly with the records.
    """
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    fields = blocking_fields(rule)
    for i, rec in enumerate(records):
        if rec.name_key:
            for key in _block_keys(rec, rule, fields):
                index[key].append(i)
    for members in index.values():
        if len(members) < 2:
            continue
        yield from _split_block(records, members, max_block, 0)


def _split_block(
    records: Sequence[CustomerRecord], members: list[int], max_block: int, depth: int
) -> Iterator[list[int]]:
    if len(members) <= max_block:
        yield members
        return
    if depth < 2:
        sub: dict[str, list[int]] = defaultdict(list)
        for i in members:
            sub[records[i].name_key[: depth + 1]].append(i)
        if len(sub) > 1:
            for part in sub.values():
                if len(part) > 1:
                    yield from _split_block(records, part, max_block, depth + 1)
            return
    ordered = sorted(members, key=lambda i: records[i].name_key)
    step = max(max_block // 2, 1)
    for start in range(0, len(ordered) - 1, step):
        window = ordered[start : start + max_block]
        if len(window) > 1:
            yield window
