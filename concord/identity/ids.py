"""Stable concord ids across runs, and the merge and split events that change them.

A new cluster's id derives from its first record key, so a rerun after a crash gives the same
ids. A prior id goes to the cluster holding most of its records; when rules join two clusters the
id holding most records survives and a ``merge`` event records the absorbed one; when a cluster
breaks up, the part holding most of the id's records keeps it and the rest get new ids with a
``split`` event. ``surviving_id`` follows a merged id to the one that holds its records now.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, select

from concord.hashing import digest
from concord.store import tables as t


@dataclass(frozen=True, slots=True)
class IdentityEvent:
    """A concord id that absorbed another (``merge``) or broke away from one (``split``)."""

    kind: Literal["merge", "split"]
    concord_id: str
    other_id: str
    detail: dict[str, Any] = field(default_factory=dict)

    def row(self, run_id: str, created_at: datetime) -> dict[str, Any]:
        """The ``identity_events`` row for this event."""
        return {
            "run_id": run_id,
            "created_at": created_at,
            "kind": self.kind,
            "concord_id": self.concord_id,
            "other_id": self.other_id,
            "detail": self.detail,
        }


def concord_id_for(first_key: str, taken: set[str]) -> str:
    """Deterministic id from the cluster's first record key; lengthened on the rare collision."""
    hashed = digest(first_key.encode())
    for size in (16, 20, 24, 29):
        candidate = f"cc_{hashed[:size]}"
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"cannot derive a unique concord id for {first_key}")


@dataclass(slots=True)
class Assignment:
    """Concord id of every record key, and the merge/split events that got there."""

    ids: dict[str, str]
    new_ids: list[str]
    events: list[IdentityEvent]


def assign_ids(
    clusters: Sequence[Sequence[str]],
    prior: dict[str, str],
    taken: set[str],
    edges_between: dict[frozenset[str], tuple[str, str, str]] | None = None,
) -> Assignment:
    """Give each cluster (member keys, sorted) a stable id given last run's ids.

    A prior id goes to the cluster holding most of its records (ties: the cluster with the
    smallest key); a cluster that receives several keeps the one with most members (ties: the
    smallest id) and records a ``merge`` event for each other; a cluster that receives none gets
    a new id, with a ``split`` event if its records had an id before.
    """
    counts: list[dict[str, int]] = []
    for c in clusters:
        pids = [prior[k] for k in c if k in prior]
        if not pids:
            counts.append({})
        elif pids.count(pids[0]) == len(pids):
            counts.append({pids[0]: len(pids)})
        else:
            counts.append(dict(Counter(pids)))
    owner: dict[str, int] = {}
    for ci, cnt in enumerate(counts):
        for pid, n in cnt.items():
            held = owner.get(pid)
            if held is None or n > counts[held][pid]:
                owner[pid] = ci
    owned: dict[int, list[str]] = defaultdict(list)
    for pid, ci in owner.items():
        owned[ci].append(pid)
    taken = set(taken)
    out = Assignment(ids={}, new_ids=[], events=[])
    for ci, members in enumerate(clusters):
        mine = sorted(owned.get(ci, []), key=lambda p: (-counts[ci][p], p))
        if mine:
            gid = mine[0]
            for other in mine[1:]:
                detail: dict[str, Any] = {"members": len(members)}
                why = (edges_between or {}).get(frozenset((gid, other)))
                if why:
                    detail.update(rule=why[0], records=[why[1], why[2]])
                out.events.append(IdentityEvent("merge", gid, other, detail))
        else:
            gid = concord_id_for(members[0], taken)
            taken.add(gid)
            out.new_ids.append(gid)
            if counts[ci]:
                source_id = sorted(counts[ci].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
                out.events.append(
                    IdentityEvent(
                        "split",
                        gid,
                        source_id,
                        {"members": len(members), "records": list(members[:20])},
                    )
                )
        for k in members:
            out.ids[k] = gid
    return out


def surviving_id(conn: Connection, concord_id: str) -> str | None:
    """The concord id that holds ``concord_id``'s records now, following merges.

    None when the store never gave that id.
    """
    g = t.golden
    seen: set[str] = set()
    current = concord_id
    while current not in seen:
        seen.add(current)
        row = conn.execute(
            select(g.c.status, g.c.merged_into).where(g.c.concord_id == current)
        ).first()
        if row is None:
            return None
        if row[0] != "merged" or not row[1]:
            return current
        current = row[1]
    return current
