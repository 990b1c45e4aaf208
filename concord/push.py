"""Push stage: send changed customers to a CRM target, merge what identity merged, store outcomes.

Change detection is per target and customer: the hash of the outbound properties the target last
accepted, kept in ``push_state`` with those properties themselves (so a dry run can show old and
new values). Only customers whose hash differs are sent; a record the target rejects keeps its last
accepted hash and is retried next run, with the target's message stored as a reject. Customers that
identity resolution merged into another become a CRM merge or a superseded mark (the connector
decides which), never a duplicate. ``dry_run_plan`` walks the same code path as ``push`` without
sending, so the plan it prints is what the push then does.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Text, bindparam, cast, func, select

from concord.config import TargetConfig
from concord.contracts import (
    MergingTarget,
    ObjectKind,
    PushOutcome,
    PushRecord,
    Supersession,
    Target,
    TargetType,
    build_target,
    target_type,
)
from concord.errors import ConcordError, RecordRejected
from concord.mapping import Mapping, load_mapping
from concord.model import Customer360
from concord.run import RunContext, record_stage
from concord.store import tables as t
from concord.store.store import utcnow

COMPANY: ObjectKind = "company"
PERSON: ObjectKind = "person"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One property whose value the push changes (``old`` is None when never sent)."""

    field: str
    old: Any
    new: Any


@dataclass(slots=True)
class PlannedUpsert:
    """One customer to create or update in the target, with what the target holds now."""

    key: str
    object_type: ObjectKind
    properties: dict[str, Any]
    hash: str
    remote_id: str | None
    previous: dict[str, Any] | None  # properties the target last accepted (None: never)
    prior_hash: str | None
    prior_status: str | None
    prior_attempts: int
    source_hash: str | None = None  # fingerprint of the 360 row and mapping it came from

    @property
    def action(self) -> str:
        """``update`` when the target holds an accepted version of the customer, else ``create``."""
        known = self.prior_hash is not None and self.prior_status != "superseded"
        return "update" if known else "create"

    @property
    def retry(self) -> bool:
        """The last attempt of this customer was rejected: this send is a retry."""
        return self.prior_status == "rejected"

    @property
    def stored(self) -> dict[str, Any]:
        """The properties as kept in ``push_state`` (JSON: Decimals as text)."""
        return json_form(self.properties)

    def changes(self) -> list[FieldChange]:
        """Field-level diff against what the target last accepted."""
        old = self.previous or {}
        new = self.stored
        names = sorted(set(old) | set(new))
        return [FieldChange(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n)]

    def record(self) -> PushRecord:
        return PushRecord(
            self.key, self.properties, object_type=self.object_type, remote_id=self.remote_id
        )


@dataclass
class PushPlan:
    """What a push to one target will do: creates, updates with old/new values, merges, calls."""

    target: str
    target_type: str
    merge_action: str
    batch_size: int
    creates: list[PlannedUpsert] = field(default_factory=list)
    updates: list[PlannedUpsert] = field(default_factory=list)
    merges: list[Supersession] = field(default_factory=list)
    unchanged: int = 0
    mapping_failed: list[dict[str, Any]] = field(default_factory=list)
    upsert_calls: int = 0
    merge_calls: int = 0

    @property
    def api_calls(self) -> int:
        return self.upsert_calls + self.merge_calls

    @property
    def retries(self) -> int:
        return sum(1 for p in (*self.creates, *self.updates) if p.retry)

    def summary(self) -> dict[str, Any]:
        return {
            "creates": len(self.creates),
            "updates": len(self.updates),
            "merges": len(self.merges),
            "unchanged": self.unchanged,
            "retries": self.retries,
            "mapping_failed": len(self.mapping_failed),
            "api_calls": self.api_calls,
        }


@dataclass(slots=True)
class _MapFailure:
    reject: dict[str, Any]


@dataclass(slots=True)
class _Refresh:
    """Unchanged for the target, but mapped from a newer 360 row: remember the new fingerprint."""

    key: str
    source_hash: str


# -- planning -----------------------------------------------------------------------------------


def json_form(properties: dict[str, Any]) -> dict[str, Any]:
    """Mapped properties as JSON data (what is stored and diffed): Decimals and dates as text."""
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(properties, default=str))
    return loaded


def content_hash(object_type: str, properties: dict[str, Any]) -> str:
    """Hash of what is sent: the object kind and the properties (order-insensitive)."""
    body = orjson.dumps(
        {"object_type": object_type, "properties": properties},
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def batch_size(tcfg: TargetConfig, cls: TargetType) -> int:
    """Records a call: the config's ``batch_size`` if set, else the target's own best size."""
    return min(tcfg.explicit_batch_size or cls.default_batch, cls.max_batch)


def _person_mapping(ctx: RunContext, tcfg: TargetConfig) -> Mapping | None:
    """The target's mapping for persons, loaded and checked with the others before any I/O."""
    return ctx.mappings.get(("target-person", tcfg.name))


def mapping_fingerprint(*mappings: Mapping | None) -> bytes:
    """What identifies the mappings' behaviour: file text, generated code and lookup tables."""
    h = hashlib.blake2b(digest_size=16)
    for m in mappings:
        if m is None:
            continue
        h.update(m.path.read_bytes() if m.path.is_file() else b"")
        h.update(m.python_source.encode())
        h.update(repr(m.spec.tables).encode())
    return h.digest()


def source_fingerprint(data_text: str | bytes, mappings: bytes) -> str:
    """Fingerprint of one stored 360 row (its JSON text) as mapped by the given mappings."""
    body = data_text.encode() if isinstance(data_text, str) else data_text
    return hashlib.blake2b(body + mappings, digest_size=16).hexdigest()


Candidate = PlannedUpsert | _MapFailure | _Refresh


def _candidates(ctx: RunContext, target_name: str) -> Iterator[Candidate]:
    """Every customer whose outbound properties differ from what the target last accepted.

    Keyset-paged over the 360 table so memory stays flat however many customers there are. A row
    accepted from the same 360 data and mappings is skipped without validating or mapping it.
    """
    tcfg = ctx.config.targets[target_name]
    company_mapping = ctx.mappings.get(("target", target_name)) or load_mapping(
        ctx.config.resolve_path(tcfg.mapping)
    )
    person_mapping = _person_mapping(ctx, tcfg)
    mappings_fp = mapping_fingerprint(company_mapping, person_mapping)
    c360, ps = t.customer360, t.push_state
    page = max(ctx.config.batch_size, 100)
    after = ""
    while True:
        with ctx.store.engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(
                        c360.c.concord_id,
                        cast(c360.c.data, Text),
                        ps.c.accepted_hash,
                        ps.c.remote_id,
                        cast(ps.c.accepted_properties, Text),
                        ps.c.status,
                        ps.c.attempts,
                        ps.c.source_hash,
                    )
                    .select_from(
                        c360.outerjoin(
                            ps,
                            (ps.c.concord_id == c360.c.concord_id) & (ps.c.target == target_name),
                        )
                    )
                    .where(c360.c.concord_id > after)
                    .order_by(c360.c.concord_id)
                    .limit(page)
                )
            )
        if not rows:
            return
        after = rows[-1][0]
        for gid, data_text, accepted, remote_id, accepted_text, status, attempts, seen in rows:
            fingerprint = source_fingerprint(data_text, mappings_fp)
            if status == "accepted" and seen == fingerprint:
                continue
            data = orjson.loads(data_text)
            customer = Customer360.model_validate(data)
            is_person = customer.is_person and person_mapping is not None
            mapping = person_mapping if is_person and person_mapping else company_mapping
            kind = PERSON if is_person else COMPANY
            try:
                props = mapping.apply(customer.model_dump(mode="python"))
            except RecordRejected as exc:
                yield _MapFailure(
                    {
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
            h = content_hash(kind, props)
            if accepted == h and status != "superseded":
                if status in ("accepted", "rejected"):
                    yield _Refresh(gid, fingerprint)
                continue
            yield PlannedUpsert(
                key=gid,
                object_type=kind,
                properties=props,
                hash=h,
                remote_id=remote_id if status != "superseded" else None,
                previous=_loads(accepted_text) if status != "superseded" else None,
                prior_hash=accepted,
                prior_status=status,
                prior_attempts=attempts or 0,
                source_hash=fingerprint,
            )


def _loads(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    loaded = orjson.loads(text)
    return loaded if isinstance(loaded, dict) else None


def _unchanged_count(ctx: RunContext, target_name: str, planned: int, failed: int) -> int:
    with ctx.store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t.customer360)).scalar_one()
    return int(total) - planned - failed


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
                object_type=_kind(kind),
                absorbed_remote_id=remote_id,
                survivor_remote_id=survivor_remote,
                absorbed_in_target=accepted is not None or remote_id is not None,
                survivor_in_target=survivor_remote is not None or survivor_accepted is not None,
                prior_attempts=attempts or 0,
                survivor_object_type=_kind(survivor_kind) if survivor_kind else None,
            )
        )
    return found


def _kind(stored: str | None) -> ObjectKind:
    return PERSON if stored == PERSON else COMPANY


def final_survivor(merged_into: dict[str, str], gid: str) -> str:
    """Follow a merge chain (A into B, B into C) to the customer that survives."""
    seen = {gid}
    current = merged_into[gid]
    while current in merged_into and current not in seen:
        seen.add(current)
        current = merged_into[current]
    return current


def dry_run_plan(ctx: RunContext, target_name: str) -> PushPlan:
    """The field-level plan of a push to ``target_name``: nothing is sent or stored."""
    tcfg = ctx.config.targets[target_name]
    cls = target_type(tcfg.type)
    size = batch_size(tcfg, cls)
    plan = PushPlan(
        target=target_name,
        target_type=tcfg.type,
        merge_action=str(cls.merge_action(tcfg)),
        batch_size=size,
    )
    by_kind: dict[str, int] = {}
    for item in _candidates(ctx, target_name):
        if isinstance(item, _MapFailure):
            plan.mapping_failed.append(item.reject)
            continue
        if isinstance(item, _Refresh):
            continue
        (plan.updates if item.action == "update" else plan.creates).append(item)
        by_kind[item.object_type] = by_kind.get(item.object_type, 0) + 1
    plan.unchanged = _unchanged_count(
        ctx, target_name, len(plan.creates) + len(plan.updates), len(plan.mapping_failed)
    )
    plan.upsert_calls = sum(math.ceil(n / size) for n in by_kind.values())
    plan.merges = supersessions(ctx, target_name)
    remote_by_kind: dict[str, int] = {}
    for s in plan.merges:
        if s.remote:
            remote_by_kind[s.object_type] = remote_by_kind.get(s.object_type, 0) + 1
    plan.merge_calls = sum(int(cls.merge_calls(tcfg, n)) for n in remote_by_kind.values())
    return plan


def plan_push(
    ctx: RunContext, target_name: str
) -> tuple[list[PlannedUpsert], int, list[dict[str, Any]]]:
    """What a push would send: (changed customers, unchanged count, mapping rejects)."""
    plan = dry_run_plan(ctx, target_name)
    return [*plan.creates, *plan.updates], plan.unchanged, plan.mapping_failed


# -- pushing ------------------------------------------------------------------------------------


def push(ctx: RunContext, target_name: str) -> dict[str, Any]:
    """Send changed customers, then merges, to one target; store one outcome per record.

    Report keys: ``accepted``/``rejected`` (what the reject-ratio check reads; rejected counts
    CRM rejects, failed merges and records the outbound mapping refused), ``retried`` (records
    sent again after an earlier reject), ``created``/``updated``, ``merged``, ``unchanged``,
    ``calls`` (API calls made, splits included, HTTP retries not).
    """
    started = utcnow()
    if ctx.options.dry_run:
        plan = dry_run_plan(ctx, target_name)
        summary: dict[str, Any] = {
            "dry_run": True,
            "planned": len(plan.creates) + len(plan.updates),
            "accepted": 0,
            "rejected": 0,
            **plan.summary(),
        }
        record_stage(ctx, "push", target_name, started, summary)
        return summary
    tcfg = ctx.config.targets[target_name]
    report: dict[str, Any] = {
        "planned": 0,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "accepted": 0,
        "rejected": 0,
        "retried": 0,
        "retried_accepted": 0,
        "mapping_failed": 0,
        "merged": 0,
        "merge_failed": 0,
        "merge_deferred": 0,
        "calls": 0,
    }
    size = batch_size(tcfg, target_type(tcfg.type))
    target = build_target(tcfg)
    try:
        buffers: dict[ObjectKind, list[PlannedUpsert]] = {}
        failures: list[dict[str, Any]] = []
        refreshes: list[_Refresh] = []
        for item in _candidates(ctx, target_name):
            if isinstance(item, _MapFailure):
                failures.append(item.reject)
                if len(failures) >= 500:
                    _store_map_failures(ctx, failures, report)
                    failures = []
                continue
            if isinstance(item, _Refresh):
                refreshes.append(item)
                if len(refreshes) >= 2000:
                    _store_refreshes(ctx, target_name, refreshes)
                    refreshes = []
                continue
            buffer = buffers.setdefault(item.object_type, [])
            buffer.append(item)
            if len(buffer) >= size:
                _send(ctx, target, target_name, buffer, report)
                buffers[item.object_type] = []
        for buffer in buffers.values():
            if buffer:
                _send(ctx, target, target_name, buffer, report)
        _store_map_failures(ctx, failures, report)
        _store_refreshes(ctx, target_name, refreshes)
        report["unchanged"] = _unchanged_count(
            ctx, target_name, report["planned"], report["mapping_failed"]
        )
        _supersede(ctx, target, target_name, report)
    except ConcordError as exc:
        report["error"] = exc.message
        report["calls"] = target.calls
        record_stage(ctx, "push", target_name, started, report, status="failed")
        raise
    finally:
        target.close()
    report["calls"] = target.calls
    record_stage(ctx, "push", target_name, started, report)
    return report


def _send(
    ctx: RunContext,
    target: Target,
    target_name: str,
    chunk: list[PlannedUpsert],
    report: dict[str, Any],
) -> None:
    outcomes = {o.key: o for o in target.push([p.record() for p in chunk])}
    report["calls"] += 1
    report["planned"] += len(chunk)
    now = utcnow()
    states: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    accepted: list[str] = []
    for p in chunk:
        o = outcomes.get(p.key)
        ok = bool(o and o.ok)
        error = None if ok else (o.error if o and o.error else "the target returned no outcome")
        states.append(
            {
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
        )
        if p.retry:
            report["retried"] += 1
        if ok:
            accepted.append(p.key)
            report["created" if p.action == "create" else "updated"] += 1
            if p.retry:
                report["retried_accepted"] += 1
        else:
            rejects.append(
                {
                    "stage": "push",
                    "source": target_name,
                    "entity": "customer360",
                    "source_id": p.key,
                    "field": None,
                    "reason": error,
                    "location": None,
                    "payload": orjson.dumps(p.properties, default=str),
                }
            )
    with ctx.store.begin() as conn:
        ctx.store.upsert(conn, t.push_state, states, ["target", "concord_id"])
        _add_new_rejects(ctx, conn, target_name, rejects)
        ctx.store.resolve_rejects(
            conn,
            stage="push",
            source=target_name,
            entity="customer360",
            run_id=ctx.run_id,
            source_ids=accepted,
        )
    report["accepted"] += len(accepted)
    report["rejected"] += len(rejects)
    ctx.emit("pushed", target=target_name, records=len(chunk))


def _store_refreshes(ctx: RunContext, target_name: str, refreshes: list[_Refresh]) -> None:
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


def _store_map_failures(
    ctx: RunContext, failures: list[dict[str, Any]], report: dict[str, Any]
) -> None:
    if not failures:
        return
    with ctx.store.begin() as conn:
        _add_new_rejects(ctx, conn, failures[0]["source"], failures)
    report["mapping_failed"] += len(failures)
    report["rejected"] += len(failures)


def _add_new_rejects(
    ctx: RunContext, conn: Connection, target_name: str, rows: list[dict[str, Any]]
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
                rj.c.source_id.in_([r["source_id"] for r in rows]),
            )
        ).all()
    )
    fresh = [
        {"run_id": ctx.run_id, **r} for r in rows if (r["source_id"], r["reason"]) not in open_now
    ]
    ctx.store.add_rejects(conn, fresh)


def _supersede(ctx: RunContext, target: Target, target_name: str, report: dict[str, Any]) -> None:
    """Resolve merges: local-only ones are marked at once, remote ones go through the target."""
    items = supersessions(ctx, target_name)
    if not items:
        return
    local = [s for s in items if not s.remote]
    remote = [s for s in items if s.remote and s.survivor_in_target]
    report["merge_deferred"] += sum(1 for s in items if s.remote and not s.survivor_in_target)
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
    rejects: list[dict[str, Any]] = []
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
                    report["merged"] += 1
            else:
                values = {"error": o.error, "attempts": s.prior_attempts + 1}
                report["merge_failed"] += 1
                rejects.append(
                    {
                        "stage": "push",
                        "source": target_name,
                        "entity": "customer360",
                        "source_id": s.absorbed,
                        "field": "merge",
                        "reason": f"merge into {s.survivor}: {o.error}",
                        "location": None,
                        "payload": None,
                    }
                )
            ps = t.push_state
            conn.execute(
                ps.update()
                .where(ps.c.target == target_name, ps.c.concord_id == s.absorbed)
                .values(run_id=ctx.run_id, updated_at=now, **values)
            )
        _add_new_rejects(ctx, conn, target_name, rejects)
        ctx.store.resolve_rejects(
            conn,
            stage="push",
            source=target_name,
            entity="customer360",
            run_id=ctx.run_id,
            source_ids=done,
        )
    report["rejected"] += len(rejects)
    report["calls"] += len(remote)
