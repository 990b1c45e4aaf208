"""The nightly sync as stage functions: extract, map, resolve, build 360, push, reconcile.

Each stage reads and writes the store, commits its own work and returns a report, so the CLI runs
them in sequence and Airflow runs each as its own task (passing only the run id). Every stage is
idempotent: rerunning it, or resuming after a crash, ends in the same store. Extract commits each
page with its checkpoint; the watermark advances only when the whole window was committed.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import func, select

from concord.config import PipelineConfig, parse_time
from concord.contracts import PushRecord, Window, build_source, build_target
from concord.errors import ConcordError, MappingError, RecordRejected, RunFailed
from concord.mapping import Mapping, load_mapping
from concord.model import ENTITY_MODELS, CanonicalModel, Customer360
from concord.store import StagedRow, Store
from concord.store import tables as t
from concord.store.store import utcnow

log = logging.getLogger("concord.pipeline")
LOCK_NAME = "sync"
EventHook = Callable[[str, dict[str, Any]], None]


@dataclass
class RunOptions:
    """What one run should do; built by the CLI or from Airflow's context."""

    run_id: str | None = None
    window_end: datetime | None = None
    window_start: datetime | None = None
    full_refresh: bool = False
    as_of: datetime | None = None
    trigger: str = "cli"
    sources: list[str] | None = None
    targets: list[str] | None = None
    dry_run: bool = False


@dataclass
class RunContext:
    """Everything a stage needs: config, store, loaded mappings and the run's identity."""

    config: PipelineConfig
    store: Store
    run_id: str
    options: RunOptions
    mappings: dict[tuple[str, str], Mapping] = field(default_factory=dict)
    on_event: EventHook | None = None

    def emit(self, name: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(name, data)

    @property
    def as_of(self) -> datetime:
        return self.options.as_of or self.options.window_end or utcnow()


def new_run_id(now: datetime | None = None) -> str:
    now = now or utcnow()
    return f"run_{now:%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"


def load_mappings(config: PipelineConfig) -> dict[tuple[str, str], Mapping]:
    """Load and compile every mapping the config names; any error stops before I/O."""
    loaded: dict[tuple[str, str], Mapping] = {}
    for sname, source in config.sources.items():
        for ename, ent in source.entities.items():
            m = load_mapping(config.resolve_path(ent.mapping))
            if m.direction != "inbound" or m.entity not in ENTITY_MODELS:
                raise MappingError(f"source entity {sname}.{ename} needs an inbound mapping to "
                                   f"one of {', '.join(ENTITY_MODELS)}", file=str(m.path))
            loaded[(sname, ename)] = m
    for tname, target in config.targets.items():
        m = load_mapping(config.resolve_path(target.mapping))
        if m.direction != "outbound":
            raise MappingError(f"target {tname} needs an outbound mapping", file=str(m.path))
        loaded[("target", tname)] = m
    return loaded


def open_context(config: PipelineConfig, options: RunOptions, *,
                 on_event: EventHook | None = None, store: Store | None = None) -> RunContext:
    mappings = load_mappings(config)
    store = store or Store.open(config.store_url)
    return RunContext(config, store, options.run_id or new_run_id(), options, mappings, on_event)


def _record_stage(ctx: RunContext, stage: str, scope: str, started: datetime,
                  report: dict[str, Any], status: str = "succeeded") -> None:
    with ctx.store.begin() as conn:
        ctx.store.upsert(conn, t.stage_reports, [{
            "run_id": ctx.run_id, "stage": stage, "scope": scope, "status": status,
            "report": report, "started_at": started, "finished_at": utcnow()}],
            ["run_id", "stage", "scope"])


def _hash(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def _cursor_key(value: str | None) -> Any:
    if value is None:
        return (0, "")
    try:
        return (1, parse_time(value).timestamp())
    except ValueError:
        return (2, value)


def _max_cursor(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if _cursor_key(a) >= _cursor_key(b) else b


def _cursor_value(record: dict[str, Any], path: str | None) -> str | None:
    if not path:
        return None
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else str(value)


# -- extract -------------------------------------------------------------------------------------

def extract(ctx: RunContext, source_name: str, entity: str) -> dict[str, Any]:
    """Pull one source entity into raw staging, committing page by page with its checkpoint."""
    started = utcnow()
    scfg = ctx.config.sources[source_name]
    ecfg = scfg.entities[entity]
    state = ctx.store.watermark(source_name, entity)
    full = ctx.options.full_refresh or ecfg.full_refresh
    start = ctx.options.window_start or (
        None if full or state.cursor is None else parse_time(state.cursor))
    window = Window(start=start, end=ctx.options.window_end)
    report: dict[str, Any] = {"pages": 0, "records": 0, "new": 0, "changed": 0, "unchanged": 0,
                              "missing_id": 0, "resumed": state.checkpoint is not None,
                              "window_start": start.isoformat() if start else None}
    high = state.checkpoint_cursor if state.checkpoint else None
    source = build_source(scfg)
    try:
        for page in source.extract(entity, window, state.checkpoint):
            rows: list[StagedRow] = []
            rejects: list[dict[str, Any]] = []
            for record in page.records:
                payload = orjson.dumps(record)
                sid = record.get(ecfg.id_field) if isinstance(record, dict) else None
                if sid in (None, ""):
                    report["missing_id"] += 1
                    rejects.append({"run_id": ctx.run_id, "stage": "extract",
                                    "source": source_name, "entity": entity, "source_id": None,
                                    "field": ecfg.id_field, "reason": f"record has no "
                                    f"'{ecfg.id_field}'", "payload": payload})
                    continue
                cursor = _cursor_value(record, ecfg.cursor_field)
                high = _max_cursor(high, cursor)
                rows.append(StagedRow(str(sid), payload, _hash(payload), cursor))
            with ctx.store.begin() as conn:
                counts = ctx.store.stage(conn, source_name, entity, rows, ctx.run_id)
                ctx.store.add_rejects(conn, rejects)
                ctx.store.save_checkpoint(
                    conn, source_name, entity, cursor=state.cursor, checkpoint=page.checkpoint,
                    checkpoint_cursor=high, run_id=ctx.run_id)
            report["pages"] += 1
            report["records"] += len(page.records)
            report["new"] += counts.new
            report["changed"] += counts.changed
            report["unchanged"] += counts.unchanged
            ctx.emit("page", source=source_name, entity=entity, records=len(page.records))
    finally:
        source.close()
    cursor = high if full else _max_cursor(state.cursor, high)
    with ctx.store.begin() as conn:
        ctx.store.save_checkpoint(conn, source_name, entity, cursor=cursor or state.cursor,
                                  checkpoint=None, checkpoint_cursor=None, run_id=ctx.run_id)
    report["watermark"] = cursor or state.cursor
    _record_stage(ctx, "extract", f"{source_name}/{entity}", started, report)
    return report


# -- map -----------------------------------------------------------------------------------------

def _canonical_row(entity: str, model: CanonicalModel, run_id: str) -> dict[str, Any]:
    table = t.CANONICAL_TABLES[entity]
    data = model.model_dump(mode="json")
    row: dict[str, Any] = {
        "source": data["ref"]["system"], "source_id": data["ref"]["id"], "data": data,
        "hash": hashlib.blake2b(orjson.dumps(data, option=orjson.OPT_SORT_KEYS),
                                digest_size=16).hexdigest(),
        "updated_at": getattr(model, "updated_at", None), "run_id": run_id,
    }
    for col in table.columns.keys():
        if col in row:
            continue
        if col == "email":
            emails = getattr(model, "emails", [])
            row[col] = emails[0] if emails else None
        else:
            value = getattr(model, col)
            row[col] = value.value if hasattr(value, "value") and not isinstance(
                value, (str, int)) else value
    return row


def _describe_validation(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return loc, f"{err['msg']} (got {str(err.get('input'))[:80]!r})"


def map_entity(ctx: RunContext, source_name: str, entity: str) -> dict[str, Any]:
    """Map pending raw records to canonical rows; failures become rejects with the payload."""
    started = utcnow()
    mapping = ctx.mappings[(source_name, entity)]
    model_cls = ENTITY_MODELS[mapping.entity]
    table = t.CANONICAL_TABLES[mapping.entity]
    report: dict[str, Any] = {"records": 0, "mapped": 0, "rejected": 0,
                              "canonical_entity": mapping.entity}
    drift: Counter[str] = Counter()
    for batch in ctx.store.pending_batches(source_name, entity, ctx.config.batch_size):
        rows: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        ok_ids: list[str] = []
        for sid, payload, _h in batch:
            report["records"] += 1
            record = orjson.loads(payload)
            try:
                out = mapping.apply(record)
                out.pop("id", None)
                out["ref"] = {"system": source_name, "entity": entity, "id": sid}
                model = model_cls.model_validate(out)
            except RecordRejected as exc:
                rejects.append(_reject(ctx, source_name, entity, sid, exc.field, exc.reason,
                                       mapping, payload))
                continue
            except ValidationError as exc:
                fld, reason = _describe_validation(exc)
                rejects.append(_reject(ctx, source_name, entity, sid, fld, reason, mapping,
                                       payload))
                continue
            drift.update(mapping.unmapped_paths(record))
            rows.append(_canonical_row(mapping.entity, model, ctx.run_id))
            ok_ids.append(sid)
        with ctx.store.begin() as conn:
            ctx.store.upsert(conn, table, rows, ["source", "source_id"])
            ctx.store.add_rejects(conn, rejects)
            ctx.store.resolve_rejects(conn, stage="map", source=source_name, entity=entity,
                                      source_ids=ok_ids, run_id=ctx.run_id)
            ctx.store.mark_mapped(conn, source_name, entity, [(s, h) for s, _p, h in batch])
        report["mapped"] += len(rows)
        report["rejected"] += len(rejects)
        ctx.emit("mapped", source=source_name, entity=entity, records=len(batch))
    report["unmapped_fields"] = dict(drift.most_common(20))
    _record_stage(ctx, "map", f"{source_name}/{entity}", started, report)
    return report


def _reject(ctx: RunContext, source: str, entity: str, sid: str, fld: str | None, reason: str,
            mapping: Mapping, payload: bytes) -> dict[str, Any]:
    return {"run_id": ctx.run_id, "stage": "map", "source": source, "entity": entity,
            "source_id": sid, "field": fld, "reason": reason, "location": str(mapping.path),
            "payload": payload}


# -- resolve, build 360 ----------------------------------------------------------------------------

def resolve(ctx: RunContext) -> dict[str, Any]:
    from concord import identity

    started = utcnow()
    report = identity.resolve(ctx.store, ctx.config.identity, ctx.run_id).as_dict()
    _record_stage(ctx, "resolve", "all", started, report)
    return report


def build_360(ctx: RunContext) -> dict[str, Any]:
    from concord import customer360

    started = utcnow()
    report = customer360.build(ctx.store, ctx.config, ctx.as_of, ctx.run_id).as_dict()
    _record_stage(ctx, "build_360", "all", started, report)
    return report


# -- push ------------------------------------------------------------------------------------------

@dataclass
class PlannedPush:
    record: PushRecord
    hash: str
    previous: dict[str, Any] | None


def plan_push(ctx: RunContext, target_name: str
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
            .select_from(c360.outerjoin(ps, (ps.c.concord_id == c360.c.concord_id)
                                        & (ps.c.target == target_name)))
            .order_by(c360.c.concord_id))
        for gid, data, accepted, remote_id in rows:
            try:
                props = mapping.apply(Customer360.model_validate(data).model_dump(mode="python"))
            except RecordRejected as exc:
                failed.append({"run_id": ctx.run_id, "stage": "push", "source": target_name,
                               "entity": "customer360", "source_id": gid, "field": exc.field,
                               "reason": exc.reason, "location": str(mapping.path),
                               "payload": orjson.dumps(data)})
                continue
            h = hashlib.blake2b(orjson.dumps(props, option=orjson.OPT_SORT_KEYS, default=str),
                                digest_size=16).hexdigest()
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
    report: dict[str, Any] = {"planned": len(plan), "unchanged": unchanged, "accepted": 0,
                              "rejected": 0, "mapping_failed": len(failed_maps), "calls": 0}
    if failed_maps and not ctx.options.dry_run:
        with ctx.store.begin() as conn:
            ctx.store.add_rejects(conn, failed_maps)
    if ctx.options.dry_run or not plan:
        _record_stage(ctx, "push", target_name, started, report)
        return report
    target = build_target(tcfg)
    size = min(tcfg.batch_size, target.max_batch)
    try:
        for i in range(0, len(plan), size):
            chunk = plan[i:i + size]
            outcomes = {o.key: o for o in target.push([p.record for p in chunk])}
            report["calls"] += 1
            now = utcnow()
            states: list[dict[str, Any]] = []
            rejects: list[dict[str, Any]] = []
            for p in chunk:
                o = outcomes.get(p.record.key)
                ok = bool(o and o.ok)
                states.append({
                    "target": target_name, "concord_id": p.record.key,
                    "status": "accepted" if ok else "rejected",
                    "accepted_hash": p.hash if ok else None, "attempted_hash": p.hash,
                    "remote_id": (o.remote_id if o else None) or p.record.remote_id,
                    "error": None if ok else (o.error if o else "no outcome returned"),
                    "attempts": 1, "run_id": ctx.run_id, "updated_at": now})
                if not ok:
                    rejects.append({"run_id": ctx.run_id, "stage": "push", "source": target_name,
                                    "entity": "customer360", "source_id": p.record.key,
                                    "field": None, "reason": states[-1]["error"],
                                    "payload": orjson.dumps(p.record.properties, default=str)})
            with ctx.store.begin() as conn:
                _save_push_states(ctx, conn, states)
                ctx.store.add_rejects(conn, rejects)
                ctx.store.resolve_rejects(conn, stage="push", source=target_name,
                                          entity="customer360", run_id=ctx.run_id,
                                          source_ids=[s["concord_id"] for s in states
                                                      if s["status"] == "accepted"])
            report["accepted"] += sum(1 for s in states if s["status"] == "accepted")
            report["rejected"] += len(rejects)
            ctx.emit("pushed", target=target_name, records=len(chunk))
    finally:
        target.close()
    _record_stage(ctx, "push", target_name, started, report)
    return report


def _save_push_states(ctx: RunContext, conn: Any, states: list[dict[str, Any]]) -> None:
    """Upsert push state; a rejected record keeps the hash it had last accepted."""
    ps = t.push_state
    prior = {gid: (acc, n) for gid, acc, n in conn.execute(
        select(ps.c.concord_id, ps.c.accepted_hash, ps.c.attempts).where(
            ps.c.target == states[0]["target"],
            ps.c.concord_id.in_([s["concord_id"] for s in states])))}
    for s in states:
        acc, attempts = prior.get(s["concord_id"], (None, 0))
        if s["status"] != "accepted":
            s["accepted_hash"] = acc
            s["attempts"] = attempts + 1
    ctx.store.upsert(conn, ps, states, ["target", "concord_id"])


# -- reconcile -------------------------------------------------------------------------------------

def reconcile(ctx: RunContext) -> dict[str, Any]:
    """Counts and money totals per source entity: staged vs canonical vs rejected, and pushed."""
    started = utcnow()
    raw, rj = t.raw_records, t.rejects
    out: dict[str, Any] = {"entities": [], "targets": [], "mismatches": []}
    with ctx.store.engine.connect() as conn:
        for sname, scfg in ctx.config.sources.items():
            for ename in scfg.entities:
                mapping = ctx.mappings[(sname, ename)]
                table = t.CANONICAL_TABLES[mapping.entity]
                staged = conn.execute(select(func.count()).select_from(raw).where(
                    raw.c.source == sname, raw.c.entity == ename)).scalar_one()
                canonical = conn.execute(select(func.count()).select_from(table).where(
                    table.c.source == sname)).scalar_one()
                rejected = conn.execute(select(func.count(func.distinct(rj.c.source_id))).where(
                    rj.c.source == sname, rj.c.entity == ename, rj.c.stage == "map",
                    rj.c.resolved_run.is_(None))).scalar_one()
                pending = conn.execute(select(func.count()).select_from(raw).where(
                    raw.c.source == sname, raw.c.entity == ename,
                    raw.c.pending.is_(True))).scalar_one()
                money = _money_totals(conn, table, sname)
                row = {"source": sname, "entity": ename, "canonical_entity": mapping.entity,
                       "staged": staged, "canonical": canonical, "rejected": rejected,
                       "pending": pending, "money": money}
                if staged != canonical + rejected + pending:
                    out["mismatches"].append(
                        f"{sname}/{ename}: staged {staged} != canonical {canonical} + rejected "
                        f"{rejected} + pending {pending}")
                out["entities"].append(row)
        ps = t.push_state
        for tname in ctx.config.targets:
            counts = dict(conn.execute(select(ps.c.status, func.count()).where(
                ps.c.target == tname).group_by(ps.c.status)).all())
            out["targets"].append({"target": tname, **{k: int(v) for k, v in counts.items()}})
    _record_stage(ctx, "reconcile", "all", started, out)
    return out


def _money_totals(conn: Any, table: Any, source: str) -> dict[str, str]:
    from concord.store.types import money_or_zero

    column = {"orders": "gross_total", "invoices": "total", "payments": "amount"}.get(table.name)
    if column is None:
        return {}
    rows = conn.execute(select(table.c.currency, func.sum(table.c[column])).where(
        table.c.source == source).group_by(table.c.currency))
    return {cur: str(money_or_zero(total)) for cur, total in rows}


# -- the whole run ---------------------------------------------------------------------------------

def begin_run(ctx: RunContext) -> None:
    ctx.store.start_run(ctx.run_id, trigger=ctx.options.trigger,
                        window_start=ctx.options.window_start, window_end=ctx.options.window_end)


def run_report(ctx: RunContext) -> dict[str, Any]:
    """The run's report assembled from its stage reports."""
    sr = t.stage_reports
    report: dict[str, Any] = {"run_id": ctx.run_id, "stages": {}}
    with ctx.store.engine.connect() as conn:
        for stage, scope, status, body in conn.execute(
                select(sr.c.stage, sr.c.scope, sr.c.status, sr.c.report)
                .where(sr.c.run_id == ctx.run_id).order_by(sr.c.started_at)):
            report["stages"].setdefault(stage, {})[scope] = {"status": status, **body}
    return report


def check_reject_ratio(ctx: RunContext, report: dict[str, Any]) -> None:
    """Fail the run when rejects pass the configured ratio (map stage, then each target)."""
    maps = report["stages"].get("map", {}).values()
    records = sum(m.get("records", 0) for m in maps)
    rejected = sum(m.get("rejected", 0) for m in maps)
    if records and rejected / records > ctx.config.reject_ratio:
        raise RunFailed(f"{rejected} of {records} records rejected in mapping "
                        f"({rejected / records:.1%}), above reject_ratio "
                        f"{ctx.config.reject_ratio:.1%}; see `concord rejects`")
    for tname, body in report["stages"].get("push", {}).items():
        limit = ctx.config.targets[tname].reject_ratio
        limit = ctx.config.reject_ratio if limit is None else limit
        sent = body.get("accepted", 0) + body.get("rejected", 0)
        if sent and body.get("rejected", 0) / sent > limit:
            raise RunFailed(f"target {tname}: {body['rejected']} of {sent} records rejected, "
                            f"above reject_ratio {limit:.1%}")


def run_sync(config: PipelineConfig, options: RunOptions, *, on_event: EventHook | None = None,
             store: Store | None = None) -> dict[str, Any]:
    """Run every stage in order under the store's sync lock; return the run report."""
    ctx = open_context(config, options, on_event=on_event, store=store)
    ctx.store.acquire_lock(LOCK_NAME, ctx.run_id, stale_after=timedelta(hours=6))
    status = "failed"
    error: str | None = None
    try:
        begin_run(ctx)
        sources = [s for s in config.sources.values() if s.enabled and
                   (options.sources is None or s.name in options.sources)]
        for scfg in sources:
            for ename, ecfg in scfg.entities.items():
                if ecfg.enabled:
                    ctx.emit("stage", stage="extract", scope=f"{scfg.name}/{ename}")
                    extract(ctx, scfg.name, ename)
                    ctx.store.heartbeat_lock(LOCK_NAME, ctx.run_id)
        for scfg in sources:
            for ename, ecfg in scfg.entities.items():
                if ecfg.enabled:
                    ctx.emit("stage", stage="map", scope=f"{scfg.name}/{ename}")
                    map_entity(ctx, scfg.name, ename)
        ctx.emit("stage", stage="resolve", scope="all")
        resolve(ctx)
        ctx.emit("stage", stage="build_360", scope="all")
        build_360(ctx)
        for tcfg in config.targets.values():
            if tcfg.enabled and (options.targets is None or tcfg.name in options.targets):
                ctx.emit("stage", stage="push", scope=tcfg.name)
                push(ctx, tcfg.name)
                ctx.store.heartbeat_lock(LOCK_NAME, ctx.run_id)
        reconcile(ctx)
        report = run_report(ctx)
        check_reject_ratio(ctx, report)
        status = "succeeded"
        return report
    except ConcordError as exc:
        error = exc.message
        raise
    finally:
        final = run_report(ctx)
        if error:
            final["error"] = error
        ctx.store.save_run_report(ctx.run_id, final, status=status)
        ctx.store.release_lock(LOCK_NAME, ctx.run_id)

