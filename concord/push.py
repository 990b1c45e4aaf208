"""Push stage: send changed customers to a target, one stored outcome per record.

Change detection is per target and customer: the hash of the outbound properties the target last
accepted. Only records whose hash differs are planned; a rejected record keeps its last accepted
hash and is retried next run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from concord.contracts import PushRecord, build_target
from concord.errors import RecordRejected
from concord.model import Customer360
from concord.run import RunContext, record_stage
from concord.store import tables as t
from concord.store.store import utcnow


@dataclass
class PlannedPush:
    record: PushRecord
    hash: str
    previous: dict[str, Any] | None


def plan_push(
    ctx: RunContext, target_name: str
) -> tuple[list[PlannedPush], int, list[dict[str, Any]]]:
    """What a push would send: changed customers only. Returns (plan, unchanged, map rejects)."""
    mapping = ctx.mappings[("target", target_name)]
    c360, ps = t.customer360, t.push_state
    plan: list[PlannedPush] = []
    unchanged = 0
    failed: list[dict[str, Any]] = []
    with ctx.store.engine.connect() as conn:
        rows = conn.execute(
            select(c360.c.concord_id, c360.c.data, ps.c.accepted_hash, ps.c.remote_id)
            .select_from(
                c360.outerjoin(
                    ps, (ps.c.concord_id == c360.c.concord_id) & (ps.c.target == target_name)
                )
            )
            .order_by(c360.c.concord_id)
        )
        for gid, data, accepted, remote_id in rows:
            try:
                props = mapping.apply(Customer360.model_validate(data).model_dump(mode="python"))
            except RecordRejected as exc:
                failed.append(
                    {
                        "run_id": ctx.run_id,
                        "stage": "push",
                        "source": target_name,
                        "entity": "customer360",
                        "source_id": gid,
                        "field": exc.field,
                        "reason": exc.reason,
                        "location": str(mapping.path),
                        "payload": orjson.dumps(data),
                    }
                )
                continue
            h = hashlib.blake2b(
                orjson.dumps(props, option=orjson.OPT_SORT_KEYS, default=str), digest_size=16
            ).hexdigest()
            if accepted == h:
                unchanged += 1
                continue
            plan.append(PlannedPush(PushRecord(gid, props, remote_id=remote_id), h, None))
    return plan, unchanged, failed


def push(ctx: RunContext, target_name: str) -> dict[str, Any]:
    """Send changed customers to one target in batches; store one outcome per record."""
    started = utcnow()
    tcfg = ctx.config.targets[target_name]
    plan, unchanged, failed_maps = plan_push(ctx, target_name)
    report: dict[str, Any] = {
        "planned": len(plan),
        "unchanged": unchanged,
        "accepted": 0,
        "rejected": 0,
        "mapping_failed": len(failed_maps),
        "calls": 0,
    }
    if failed_maps and not ctx.options.dry_run:
        with ctx.store.begin() as conn:
            ctx.store.add_rejects(conn, failed_maps)
    if ctx.options.dry_run or not plan:
        record_stage(ctx, "push", target_name, started, report)
        return report
    target = build_target(tcfg)
    size = min(tcfg.batch_size, target.max_batch)
    try:
        for i in range(0, len(plan), size):
            chunk = plan[i : i + size]
            outcomes = {o.key: o for o in target.push([p.record for p in chunk])}
            report["calls"] += 1
            now = utcnow()
            states: list[dict[str, Any]] = []
            rejects: list[dict[str, Any]] = []
            for p in chunk:
                o = outcomes.get(p.record.key)
                ok = bool(o and o.ok)
                states.append(
                    {
                        "target": target_name,
                        "concord_id": p.record.key,
                        "status": "accepted" if ok else "rejected",
                        "accepted_hash": p.hash if ok else None,
                        "attempted_hash": p.hash,
                        "remote_id": (o.remote_id if o else None) or p.record.remote_id,
                        "error": None if ok else (o.error if o else "no outcome returned"),
                        "attempts": 1,
                        "run_id": ctx.run_id,
                        "updated_at": now,
                    }
                )
                if not ok:
                    rejects.append(
                        {
                            "run_id": ctx.run_id,
                            "stage": "push",
                            "source": target_name,
                            "entity": "customer360",
                            "source_id": p.record.key,
                            "field": None,
                            "reason": states[-1]["error"],
                            "payload": orjson.dumps(p.record.properties, default=str),
                        }
                    )
            with ctx.store.begin() as conn:
                _save_push_states(ctx, conn, states)
                ctx.store.add_rejects(conn, rejects)
                ctx.store.resolve_rejects(
                    conn,
                    stage="push",
                    source=target_name,
                    entity="customer360",
                    run_id=ctx.run_id,
                    source_ids=[s["concord_id"] for s in states if s["status"] == "accepted"],
                )
            report["accepted"] += sum(1 for s in states if s["status"] == "accepted")
            report["rejected"] += len(rejects)
            ctx.emit("pushed", target=target_name, records=len(chunk))
    finally:
        target.close()
    record_stage(ctx, "push", target_name, started, report)
    return report


def _save_push_states(ctx: RunContext, conn: Any, states: list[dict[str, Any]]) -> None:
    """Upsert push state; a rejected record keeps the hash it had last accepted."""
    ps = t.push_state
    prior = {
        gid: (acc, n)
        for gid, acc, n in conn.execute(
            select(ps.c.concord_id, ps.c.accepted_hash, ps.c.attempts).where(
                ps.c.target == states[0]["target"],
                ps.c.concord_id.in_([s["concord_id"] for s in states]),
            )
        )
    }
    for s in states:
        acc, attempts = prior.get(s["concord_id"], (None, 0))
        if s["status"] != "accepted":
            s["accepted_hash"] = acc
            s["attempts"] = attempts + 1
    ctx.store.upsert(conn, ps, states, ["target", "concord_id"])
