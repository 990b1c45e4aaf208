"""Sending: one batch to the target and its outcomes into the store, then the merges.

Each customer's outcome is stored in the same transaction as its rejects: an accepted customer
keeps the hash and properties the target accepted (and closes its open rejects); a refused one
keeps its last accepted hash, so it is sent again next run, with the target's message stored as
a reject (once: a retry failing for the same reason does not pile up). Merges are resolved after
the upserts: one the target never saw only changes the local state, the others go through the
target when it is a ``MergingTarget``.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select

from concord.contracts import MergingTarget, PushOutcome, Target
from concord.pipeline.context import RunContext
from concord.pipeline.reports import PushReport
from concord.push.diff import PUSH_ENTITY, PlannedUpsert, Refresh
from concord.push.merges import supersessions
from concord.store import Reject
from concord.store import tables as t
from concord.utc import utcnow


def _state(
    ctx: RunContext, target_name: str, p: PlannedUpsert, o: PushOutcome | None, now: Any
) -> dict[str, Any]:
    """The push-state row of one customer after the target's answer ``o`` (None: no answer)."""
    ok = bool(o and o.ok)
    error = None if ok else (o.error if o and o.error else "the target returned no outcome")
    return {
        "target": target_name,
        "concord_id": p.key,
        "status": "accepted" if ok else "rejected",
        "accepted_hash": p.hash if ok else p.prior_hash,
        "attempted_hash": p.hash,
        "remote_id": (o.remote_id if o and o.remote_id else None) or p.remote_id,
        "accepted_properties": p.stored if ok else p.previous,
        "object_type": p.object_type,
        "source_hash": p.source_hash if ok else None,
        "error": error,
        "attempts": 0 if ok else p.prior_attempts + 1,
        "run_id": ctx.run_id,
        "updated_at": now,
    }


def send_batch(
    ctx: RunContext,
    target: Target,
    target_name: str,
    chunk: list[PlannedUpsert],
    report: PushReport,
) -> None:
    """Upsert one batch and store each customer's outcome and any rejects in one transaction."""
    outcomes = {o.key: o for o in target.push([p.record() for p in chunk])}
    report.calls += 1
    report.planned += len(chunk)
    now = utcnow()
    states: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    accepted: list[str] = []
    for p in chunk:
        o = outcomes.get(p.key)
        state = _state(ctx, target_name, p, o, now)
        states.append(state)
        if p.retry:
            report.retried += 1
        if state["status"] == "accepted":
            accepted.append(p.key)
            if p.action == "create":
                report.created += 1
            else:
                report.updated += 1
            if p.retry:
                report.retried_accepted += 1
        else:
            rejects.append(
                Reject(
                    stage="push",
                    source=target_name,
                    entity=PUSH_ENTITY,
                    source_id=p.key,
                    reason=state["error"] or "",
                    payload=orjson.dumps(p.properties, default=str),
                )
            )
    with ctx.store.begin() as conn:
        ctx.store.upsert(conn, t.push_state, states, ["target", "concord_id"])
        _settle_rejects(ctx, conn, target_name, rejects, done=accepted)
    report.accepted += len(accepted)
    report.rejected += len(rejects)
    ctx.emit("pushed", target=target_name, records=len(chunk))


def confirm_held(ctx: RunContext, target_name: str, held: list[PlannedUpsert]) -> None:
    """Store customers a read-back found the target holding as concord would send them.

    Their push state becomes what the target holds (accepted, its record id), so the next push
    skips them, and their open push rejects close.
    """
    if not held:
        return
    now = utcnow()
    states = [
        _state(ctx, target_name, p, PushOutcome(p.key, ok=True, remote_id=p.remote_id), now)
        for p in held
    ]
    with ctx.store.begin() as conn:
        ctx.store.upsert(conn, t.push_state, states, ["target", "concord_id"])
        _settle_rejects(ctx, conn, target_name, [], done=[p.key for p in held])


def store_refreshes(ctx: RunContext, target_name: str, refreshes: list[Refresh]) -> None:
    """Remember that unchanged customers were checked against their newest 360 row."""
    if not refreshes:
        return
    ps = t.push_state
    with ctx.store.begin() as conn:
        conn.execute(
            ps.update()
            .where(ps.c.target == target_name, ps.c.concord_id == bindparam("key"))
            .values(status="accepted", error=None, source_hash=bindparam("fp")),
            [{"key": r.key, "fp": r.source_hash} for r in refreshes],
        )


def store_map_failures(
    ctx: RunContext, target_name: str, failures: list[Reject], report: PushReport
) -> None:
    """Store the customers the outbound mapping refused as rejects (counted as rejected)."""
    if not failures:
        return
    with ctx.store.begin() as conn:
        add_new_rejects(ctx, conn, target_name, failures)
    report.mapping_failed += len(failures)
    report.rejected += len(failures)


def add_new_rejects(
    ctx: RunContext, conn: Connection, target_name: str, rows: list[Reject]
) -> None:
    """Store rejects, skipping ones already open with the same reason (retries do not pile up)."""
    if not rows:
        return
    rj = t.rejects
    open_now = set(
        conn.execute(
            select(rj.c.source_id, rj.c.reason).where(
                rj.c.stage == "push",
                rj.c.source == target_name,
                rj.c.resolved_run.is_(None),
                rj.c.source_id.in_([r.source_id for r in rows]),
            )
        ).all()
    )
    fresh = [r for r in rows if (r.source_id, r.reason) not in open_now]
    ctx.store.add_rejects(conn, fresh, run_id=ctx.run_id)


def _settle_rejects(
    ctx: RunContext, conn: Connection, target_name: str, rejects: list[Reject], *, done: list[str]
) -> None:
    """Store new rejects and close the open ones of customers that have now gone through."""
    add_new_rejects(ctx, conn, target_name, rejects)
    ctx.store.resolve_rejects(
        conn,
        stage="push",
        source=target_name,
        entity=PUSH_ENTITY,
        run_id=ctx.run_id,
        source_ids=done,
    )


def resolve_merges(ctx: RunContext, target: Target, target_name: str, report: PushReport) -> None:
    """Resolve merges: local-only ones are marked at once, remote ones go through the target."""
    items = supersessions(ctx, target_name)
    if not items:
        return
    local = [s for s in items if not s.remote]
    remote = [s for s in items if s.remote and s.survivor_in_target]
    report.merge_deferred += sum(1 for s in items if s.remote and not s.survivor_in_target)
    outcomes: dict[str, PushOutcome] = {s.absorbed: PushOutcome(s.absorbed, ok=True) for s in local}
    if remote:
        if not isinstance(target, MergingTarget):
            for s in remote:
                outcomes[s.absorbed] = PushOutcome(
                    s.absorbed, ok=False, error=f"target type cannot merge records ({s.survivor})"
                )
        else:
            for result in target.supersede(remote):
                outcomes[result.key] = result
    now = utcnow()
    rejects: list[Reject] = []
    done: list[str] = []
    with ctx.store.begin() as conn:
        for s in items:
            o = outcomes.get(s.absorbed)
            if o is None:
                continue
            values: dict[str, Any]
            if o.ok:
                values = {"status": "superseded", "error": None, "attempts": 0}
                done.append(s.absorbed)
                if s.remote:
                    report.merged += 1
            else:
                values = {"error": o.error, "attempts": s.prior_attempts + 1}
                report.merge_failed += 1
                rejects.append(
                    Reject(
                        stage="push",
                        source=target_name,
                        entity=PUSH_ENTITY,
                        source_id=s.absorbed,
                        field="merge",
                        reason=f"merge into {s.survivor}: {o.error}",
                    )
                )
            ps = t.push_state
            conn.execute(
                ps.update()
                .where(ps.c.target == target_name, ps.c.concord_id == s.absorbed)
                .values(run_id=ctx.run_id, updated_at=now, **values)
            )
        _settle_rejects(ctx, conn, target_name, rejects, done=done)
    report.rejected += len(rejects)
    report.calls += len(remote)
