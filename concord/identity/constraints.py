"""Negative evidence and manual decisions: the union-find that refuses merges it must not make.

Two kinds of constraints hold for whole clusters, so no chain of links through a third record
can break them:

- **Manual**: never-merge pairs from the overrides file (``concord.overrides``); force-merge
  pairs are linked first, under ``FORCE_RULE``, and win over everything else below.
- **Evidence** (``Evidence``, one per record): two clusters holding different identifiers of one
  type (VAT, EIN, ... compared normalised, valid or not) never merge; accounts an ERP relates
  (bill-to, parent, branch) are related, not the same, and never merge; clusters in different
  countries merge only on strong evidence (a deterministic link or a match weight of at least
  ``cross_country_weight``); companies with different legal forms (GmbH vs Inc.) merge only on a
  deterministic link.

``ConstrainedUnionFind.union`` says which constraint refused a join (``refusal``), so the resolve
report counts them and ``explain`` names them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

FORCE_RULE = "force_merge"
"""The rule name a forced link is stored under."""
NEVER_MERGE = "never_merge override"
"""The refusal a never-merge pair gives."""


@dataclass(slots=True)
class Evidence:
    """What a cluster knows that can forbid a merge (merged as clusters join)."""

    identifiers: dict[str, frozenset[str]] = field(default_factory=dict)
    countries: frozenset[str] = frozenset()
    legal_forms: frozenset[str] = frozenset()
    related: frozenset[int] = frozenset()
    members: frozenset[int] = frozenset()

    def merged(self, other: Evidence) -> Evidence:
        """The evidence of the joined cluster."""
        ids = dict(self.identifiers)
        for kind, values in other.identifiers.items():
            ids[kind] = ids.get(kind, frozenset()) | values
        return Evidence(
            ids,
            self.countries | other.countries,
            self.legal_forms | other.legal_forms,
            self.related | other.related,
            self.members | other.members,
        )


def conflict(
    a: Evidence, b: Evidence, *, deterministic: bool, weight: float, cross_country_weight: float
) -> str | None:
    """Why two clusters must not merge on this link, or None when they may."""
    for kind in sorted(a.identifiers.keys() & b.identifiers.keys()):
        if a.identifiers[kind].isdisjoint(b.identifiers[kind]):
            mine = ", ".join(sorted(a.identifiers[kind]))
            theirs = ", ".join(sorted(b.identifiers[kind]))
            return f"different {kind} ({mine} vs {theirs})"
    if not a.related.isdisjoint(b.members) or not b.related.isdisjoint(a.members):
        return "related accounts (bill-to / parent / branch): related, not the same"
    if deterministic:
        return None
    if a.countries and b.countries and a.countries.isdisjoint(b.countries):
        if weight < cross_country_weight:
            countries = "/".join(sorted(a.countries)) + " vs " + "/".join(sorted(b.countries))
            return (
                f"different countries ({countries}) need a match weight of "
                f"{cross_country_weight:g}, this link has {weight:.1f}"
            )
    if a.legal_forms and b.legal_forms and a.legal_forms.isdisjoint(b.legal_forms):
        forms = "/".join(sorted(a.legal_forms)) + " vs " + "/".join(sorted(b.legal_forms))
        return f"different legal forms ({forms})"
    return None


class ConstrainedUnionFind:
    """Union-find over record indices that refuses unions the constraints forbid.

    ``never`` are never-merge pairs of record indices; ``evidence`` (optional, one per record)
    adds the negative evidence above. ``union`` returns True if joined, False if already
    together, None if refused; ``refusal`` then says why.
    """

    def __init__(
        self,
        n: int,
        never: Sequence[tuple[int, int]],
        evidence: Sequence[Evidence] | None = None,
        cross_country_weight: float = math.inf,
    ) -> None:
        self.parent = list(range(n))
        self.tags: dict[int, set[tuple[int, int]]] = {}
        for i, (a, b) in enumerate(never):
            self.tags.setdefault(a, set()).add((i, 0))
            self.tags.setdefault(b, set()).add((i, 1))
        self.evidence: dict[int, Evidence] = {}
        if evidence is not None:
            for i, ev in enumerate(evidence):
                if ev.identifiers or ev.countries or ev.legal_forms or ev.related:
                    self.evidence[i] = ev
        self.cross_country_weight = cross_country_weight
        self.refusal = ""

    def find(self, x: int) -> int:
        """The root of ``x``'s set (with path compression)."""
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def _evidence(self, root: int) -> Evidence:
        ev = self.evidence.get(root)
        if ev is None:
            return Evidence(members=frozenset((root,)))
        if not ev.members:
            ev = Evidence(
                ev.identifiers, ev.countries, ev.legal_forms, ev.related, frozenset((root,))
            )
            self.evidence[root] = ev
        return ev

    def check(
        self,
        a: int,
        b: int,
        *,
        deterministic: bool = True,
        weight: float = math.inf,
        forced: bool = False,
    ) -> str | None:
        """Why joining ``a``'s and ``b``'s clusters is refused, or None (nothing changes)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        return self._refusal(ra, rb, deterministic, weight, forced)

    def _refusal(
        self, ra: int, rb: int, deterministic: bool, weight: float, forced: bool
    ) -> str | None:
        """Why the clusters rooted at ``ra`` and ``rb`` (two roots) may not join, or None."""
        ta, tb = self.tags.get(ra), self.tags.get(rb)
        if ta and tb and any((i, 1 - side) in tb for i, side in ta):
            return NEVER_MERGE
        if forced or (ra not in self.evidence and rb not in self.evidence):
            return None
        return conflict(
            self._evidence(ra),
            self._evidence(rb),
            deterministic=deterministic,
            weight=weight,
            cross_country_weight=self.cross_country_weight,
        )

    def union(
        self,
        a: int,
        b: int,
        *,
        deterministic: bool = True,
        weight: float = math.inf,
        forced: bool = False,
    ) -> bool | None:
        """True if joined, False if already together, None if a constraint forbids it."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        why = self._refusal(ra, rb, deterministic, weight, forced)
        if why is not None:
            self.refusal = why
            return None
        ta, tb = self.tags.get(ra), self.tags.get(rb)
        if rb < ra:
            ra, rb = rb, ra
            ta, tb = tb, ta
        self.parent[rb] = ra
        if tb:
            self.tags[ra] = (ta or set()) | tb
            del self.tags[rb]
        if ra in self.evidence or rb in self.evidence:
            self.evidence[ra] = self._evidence(ra).merged(self._evidence(rb))
            self.evidence.pop(rb, None)
        return True
