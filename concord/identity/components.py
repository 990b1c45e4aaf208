"""Which records an incremental night re-links: the key-connected parts of the base it touched.

With deterministic rules only (``crossref``, ``tax_id``, ``identifier``, ``email``), whether two
records end up together depends on nothing but the records of their *component*: the records
joined, directly or through others, by a shared rule key, a cross-reference, a relation (the
negative evidence reads related records) or a golden id they held last run. Linking a union of
whole components, in key order as the full run does, gives the full run's clusters, links and
refusals for them; every other component is as the last run left it, because none of its
records changed. ``touched_components`` finds the components holding a changed record (new, its
fingerprint changed, or a record of its golden id gone) with a union-find over the keys, one
pass over the records and nothing normalised again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from concord.config import MatchRuleConfig
from concord.identity.constraints import ConstrainedUnionFind
from concord.identity.linking import match_keys
from concord.identity.normalise import CustomerRecord

COMPONENT_RULES = frozenset({"crossref", "tax_id", "identifier", "email"})
"""Rule types whose links depend on a record's component alone (equal keys, no scores)."""


def component_rules(rules: Sequence[MatchRuleConfig], *, scored: bool = False) -> bool:
    """Whether components can be re-linked on their own under ``rules``.

    Every rule must link on equal keys, or, when the night has its probabilistic pairs
    ``scored`` (an incremental night: the changed records against the rest, the unchanged
    ones by their kept links), be the probabilistic rule. Fuzzy names compare within blocks
    whose size decides whether they are compared at all: never by component.
    """
    allowed = COMPONENT_RULES | {"probabilistic"} if scored else COMPONENT_RULES
    return bool(rules) and all(r.type in allowed for r in rules)


def touched_components(
    records: Sequence[CustomerRecord],
    changed: Collection[int],
    prior: Mapping[str, str],
    rules: Sequence[MatchRuleConfig],
    pairs: Iterable[tuple[int, int]] = (),
) -> list[int]:
    """Indices (ascending) of every record in a component that holds a ``changed`` record.

    ``records`` are sorted by key; ``prior`` is each record key's golden id from the last run
    (the records of one id form one component, so an id is re-assigned as a whole); the rules
    of ``COMPONENT_RULES`` link on their keys, any other is ignored; ``pairs`` are further
    edges (the probabilistic rule's scored pairs at or above its threshold).
    """
    uf = ConstrainedUnionFind(len(records), ())  # no constraint: every union joins
    join, find = uf.union, uf.find
    position = {rec.key: i for i, rec in enumerate(records)}
    first: dict[str, dict[str, int]] = {}

    def share(kind: str, value: str, i: int) -> None:
        j = first.setdefault(kind, {}).setdefault(value, i)
        if j != i:
            join(i, j)

    keyed = [r for r in rules if r.type in COMPONENT_RULES and r.type != "crossref"]
    crossrefs = any(r.type == "crossref" for r in rules)
    for i, rec in enumerate(records):
        gid = prior.get(rec.key)
        if gid is not None:
            share("", gid, i)
        for rule in keyed:
            for value in match_keys(rec, rule):
                share(rule.type, value, i)
        if crossrefs:
            for ref in rec.crossrefs:
                for name in _named(ref):
                    j = position.get(name)
                    if j is not None:
                        join(i, j)
        for _kind, key in rec.relations:
            j = position.get(key)
            if j is not None:
                join(i, j)
    for a, b in pairs:
        join(a, b)
    roots = {find(i) for i in changed}
    return [i for i in range(len(records)) if find(i) in roots]


def _named(ref: str) -> tuple[str, ...]:
    """The record keys a cross-reference may name (``linking.crossref_names``, read back)."""
    source, _, rest = ref.partition(":")
    if rest.startswith("customers:"):
        return ref, f"{source}:{rest.removeprefix('customers:')}"
    return (ref,)
