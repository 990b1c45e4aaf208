"""Manual decisions win over every rule: the union-find that enforces never-merge pairs.

The pairs come from the overrides file (``concord.overrides``). ``ConstrainedUnionFind`` refuses
any union that would put a never-merge pair into one cluster, so no chain of rule links can join
them either; force-merge pairs are linked first, under ``FORCE_RULE``.
"""

from __future__ import annotations

from collections.abc import Sequence

FORCE_RULE = "force_merge"
"""The rule name a forced link is stored under."""


class ConstrainedUnionFind:
    """Union-find over record indices that refuses unions joining a never-merge pair."""

    def __init__(self, n: int, never: Sequence[tuple[int, int]]) -> None:
        self.parent = list(range(n))
        self.tags: dict[int, set[tuple[int, int]]] = {}
        for i, (a, b) in enumerate(never):
            self.tags.setdefault(a, set()).add((i, 0))
            self.tags.setdefault(b, set()).add((i, 1))

    def find(self, x: int) -> int:
        """The root of ``x``'s set (with path compression)."""
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> bool | None:
        """True if joined, False if already together, None if an override forbids it."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        ta, tb = self.tags.get(ra), self.tags.get(rb)
        if ta and tb and any((i, 1 - side) in tb for i, side in ta):
            return None
        if rb < ra:
            ra, rb = rb, ra
            ta, tb = tb, ta
        self.parent[rb] = ra
        if tb:
            self.tags[ra] = (ta or set()) | tb
            del self.tags[rb]
        return True
