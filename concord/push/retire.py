"""Retirements: customers a target holds that no ERP holds any more.

A golden customer whose every source record was archived in its ERP or deleted (an id sweep
found it gone) is left out by identity resolution, so it has no 360 row; the target still holds
the record concord pushed. The target's ``retire`` says what happens to it, never leaving it
live without a word: ``mark`` (default) upserts only ``retire_property: retire_value``
(``concord_status: archived``) on the record; ``archive`` archives it where the target can
(``ArchivingTarget``: HubSpot). A retired customer's push state is ``retired``; if it comes
back, it is pushed again in full, its mark cleared (``concord.push.diff.revive_properties``).
"""

from __future__ import annotations

from sqlalchemy import and_, select, update

from concord.contracts import ArchivingTarget, PushRecord, Target
from concord.errors import PushError
from concord.pipeline.context import RunContext
from concord.push.diff import RETIRED
from concord.push.merges import object_kind
from concord.store import tables as t
from concord.utc import utcnow


def retirements(ctx: RunContext, target_name: str) -> list[PushRecord]:
    """Accepted customers of the target with no 360 row that were not merged away."""
    ps, c360, g = t.push_state, t.customer360, t.golden
    has_360 = select(c360.c.concord_id).where(c360.c.concord_id == ps.c.concord_id).exists()
    merged = (
        select(g.c.concord_id)
        .where(and_(g.c.concord_id == ps.c.concord_id, g.c.status == "merged"))
        .exists()
    )
    tcfg = ctx.config.targets[target_name]
    with ctx.store.engine.connect() as conn:
        rows = conn.execute(
            select(ps.c.concord_id, ps.c.remote_id, ps.c.object_type)
            .where(
                ps.c.target == target_name,
                ps.c.status == "accepted",
                ~has_360,
                ~merged,
            )
            .order_by(ps.c.concord_id)
        ).all()
    return [
        PushRecord(
            key=str(gid),
            properties={tcfg.retire_property: tcfg.retire_value},
            object_type=object_kind(kind),
            remote_id=remote,
        )
        for gid, remote, kind in rows
    ]


def retire(ctx: RunContext, target: Target, target_name: str) -> tuple[int, int]:
    """Mark or archive the target's retired customers; (retired, failed)."""
    records = retirements(ctx, target_name)
    if not records:
        return 0, 0
    tcfg = ctx.config.targets[target_name]
    if tcfg.retire == "archive":
        if not isinstance(target, ArchivingTarget):
            raise PushError(
                f"a {tcfg.type} target cannot archive records; set retire: mark",
                target=target_name,
            )
        outcomes = target.archive(records)
    else:
        outcomes = target.push(records)
    ps = t.push_state
    done = [o.key for o in outcomes if o.ok]
    now = utcnow()
    with ctx.store.begin() as conn:
        if done:
            conn.execute(
                update(ps)
                .where(ps.c.target == target_name, ps.c.concord_id.in_(done))
                .values(
                    status=RETIRED,
                    accepted_hash=None,
                    source_hash=None,
                    run_id=ctx.run_id,
                    updated_at=now,
                )
            )
        for outcome in outcomes:
            if not outcome.ok:
                conn.execute(
                    update(ps)
                    .where(ps.c.target == target_name, ps.c.concord_id == outcome.key)
                    .values(error=outcome.error, run_id=ctx.run_id, updated_at=now)
                )
    return len(done), len(outcomes) - len(done)
