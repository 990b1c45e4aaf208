"""Merges to resolve in a target: customers identity resolution merged away that the target holds.

A merged-away (absorbed) customer still in a target's ``push_state`` becomes a ``Supersession``
naming its final survivor (merge chains are followed) and whether either side exists in the
target; the connector then merges, marks or deletes it as it documents, never leaving a duplicate.
"""

from __future__ import annotations

from sqlalchemy import select

from concord.contracts import ObjectKind, Supersession
from concord.pipeline.context import RunContext
from concord.push.diff import COMPANY, PERSON
from concord.store import tables as t


def supersessions(ctx: RunContext, target_name: str) -> list[Supersession]:
    """Merged-away customers still present in the target's state, with their final survivor."""
    g, ps = t.golden, t.push_state
    with ctx.store.engine.connect() as conn:
        merged_into: dict[str, str] = {
            gid: into
            for gid, into in conn.execute(
                select(g.c.concord_id, g.c.merged_into).where(
                    g.c.status == "merged", g.c.merged_into.is_not(None)
                )
            )
        }
        if not merged_into:
            return []
        pending = list(
            conn.execute(
                select(
                    ps.c.concord_id,
                    ps.c.remote_id,
                    ps.c.object_type,
                    ps.c.attempts,
                    ps.c.accepted_hash,
                )
                .select_from(ps.join(g, g.c.concord_id == ps.c.concord_id))
                .where(
                    ps.c.target == target_name,
                    ps.c.status != "superseded",
                    g.c.status == "merged",
                    g.c.merged_into.is_not(None),
                )
                .order_by(ps.c.concord_id)
            )
        )
        if not pending:
            return []
        survivors = {final_survivor(merged_into, gid) for gid, *_ in pending}
        survivor_state = {
            gid: (remote_id, accepted, kind)
            for gid, remote_id, accepted, kind in conn.execute(
                select(ps.c.concord_id, ps.c.remote_id, ps.c.accepted_hash, ps.c.object_type).where(
                    ps.c.target == target_name,
                    ps.c.concord_id.in_(sorted(survivors)),
                    ps.c.status != "superseded",
                )
            )
        }
    found: list[Supersession] = []
    for gid, remote_id, kind, attempts, accepted in pending:
        survivor = final_survivor(merged_into, gid)
        survivor_remote, survivor_accepted, survivor_kind = survivor_state.get(
            survivor, (None, None, None)
        )
        found.append(
            Supersession(
                absorbed=gid,
                survivor=survivor,
                object_type=object_kind(kind),
                absorbed_remote_id=remote_id,
                survivor_remote_id=survivor_remote,
                absorbed_in_target=accepted is not None or remote_id is not None,
                survivor_in_target=survivor_remote is not None or survivor_accepted is not None,
                prior_attempts=attempts or 0,
                survivor_object_type=object_kind(survivor_kind) if survivor_kind else None,
            )
        )
    return found


def object_kind(stored: str | None) -> ObjectKind:
    """The object kind as ``push_state`` stores it (companies when never set)."""
    return PERSON if stored == PERSON else COMPANY


def final_survivor(merged_into: dict[str, str], gid: str) -> str:
    """Follow a merge chain (A into B, B into C) to the customer that survives."""
    seen = {gid}
    current = merged_into[gid]
    while current in merged_into and current not in seen:
        seen.add(current)
        current = merged_into[current]
    return current
