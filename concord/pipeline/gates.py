"""Gates before the push: a run stops before any CRM call when a source entity looks broken.

Each enabled source entity in the run's scope is checked against the store and this run's own
extract reports:

- **Reject ratio over the entity.** Its open map rejects plus the records this run dropped at
  extract (no id), over its staged records plus those drops. Above ``reject_ratio`` the gate
  fails, once at least ``reject_min_count`` records are rejected (one bad record among ten is a
  reject to fix, not a failed night). Counted over the whole entity, not this run, a quiet night
  with three bad changes among thousands passes, and a broken entity fails every night until it
  is fixed.
- **Nothing maps.** The run pulled, dropped, replayed or mapped records of the entity (mapped:
  also those an earlier, stopped run staged) and the entity has not one canonical row (a source
  whose ``id_field`` is wrong, a mapping that refuses all).

The sync checks the gates after the map stage, before resolve; the push stage checks them again
before its first call (an Airflow push task, ``concord push``), so nothing is sent past them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from concord.errors import RunFailed
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.reports import StageReport
from concord.store import tables as t
from concord.store.counts import any_canonical, rejected_count, staged_count
from concord.utc import utcnow


@dataclass
class GateReport(StageReport):
    """What the gates counted per source entity, and why they failed (empty: passed)."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _this_run(conn: Connection, run_id: str, stage: str, scope: str) -> dict[str, Any]:
    """The report ``stage`` stored for ``scope`` in this run, with its ``status`` ({}: none)."""
    sr = t.stage_reports
    found = conn.execute(
        select(sr.c.report, sr.c.status).where(
            sr.c.run_id == run_id, sr.c.stage == stage, sr.c.scope == scope
        )
    ).first()
    if found is None:
        return {}
    return {**dict(found[0] or {}), "status": found[1]}


def check_entity(ctx: RunContext, conn: Connection, source: str, entity: str) -> dict[str, Any]:
    """The gate's figures for one source entity, with ``failure`` set when it fails."""
    mapping = ctx.mappings[(source, entity)]
    scope = f"{source}/{entity}"
    pulled = _this_run(conn, ctx.run_id, "extract", scope)
    mapped = _this_run(conn, ctx.run_id, "map", scope)
    prefix = ctx.config.sources[source].entities[entity].id_prefix
    staged, rejected = staged_count(conn, source, entity), rejected_count(conn, source, entity)
    # whether any record maps, not how many: reconcile counts them after the push
    maps = any_canonical(conn, source, entity, t.CANONICAL_TABLES[mapping.entity], prefix)
    dropped = int(pulled.get("missing_id", 0))
    bad, total = rejected + dropped, staged + dropped
    row: dict[str, Any] = {
        "scope": scope,
        "staged": staged,
        "rejected": rejected,
        "dropped": dropped,
        "maps": maps,
        "failure": None,
    }
    limit, minimum = ctx.config.reject_ratio, ctx.config.reject_min_count
    worked = int(pulled.get("new", 0)) + int(pulled.get("changed", 0)) + dropped
    worked += int(mapped.get("replayed", 0))
    if pulled.get("status") == "succeeded":
        # records an earlier, stopped run staged are mapped by this one: they count too (a
        # failed extract is the run's error to report, not its half-staged page)
        worked = max(worked, int(mapped.get("records", 0)) + dropped)
    if total and bad >= minimum and bad / total > limit:
        row["failure"] = (
            f"{scope}: {bad} of {total} records rejected ({bad / total:.1%}"
            + (f", {dropped} dropped at extract" if dropped else "")
            + f"), above reject_ratio {limit:.1%}; see `concord rejects`"
        )
    elif worked and not maps:
        row["failure"] = (
            f"{scope}: {worked} records pulled or mapped this run and not one maps"
            + (f" ({dropped} had no '{_id_field(ctx, source, entity)}')" if dropped else "")
            + "; see `concord rejects`"
        )
    return row


def _id_field(ctx: RunContext, source: str, entity: str) -> str:
    return ctx.config.sources[source].entities[entity].id_label


def gate_entities(ctx: RunContext) -> list[tuple[str, str]]:
    """The enabled source entities in the run's scope."""
    wanted = ctx.options.sources
    return [
        (sname, ename)
        for sname, scfg in ctx.config.sources.items()
        if scfg.enabled and (wanted is None or sname in wanted)
        for ename, ecfg in scfg.entities.items()
        if ecfg.enabled
    ]


def check_gates(ctx: RunContext) -> GateReport:
    """Evaluate the gates and record them as the run's ``gate`` stage (failed when any fails)."""
    started: datetime = utcnow()
    report = GateReport()
    # the map stage just cleared every mapped record's pending flag: plan the counts on that
    ctx.store.refresh_statistics([t.raw_records, t.raw_state, *t.CANONICAL_TABLES.values()])
    with ctx.store.engine.connect() as conn:
        for source, entity in gate_entities(ctx):
            row = check_entity(ctx, conn, source, entity)
            report.entities.append(row)
            if row["failure"]:
                report.failures.append(row["failure"])
    record_stage(ctx, "gate", "all", started, report, "failed" if report.failures else "succeeded")
    return report


def require_gates(ctx: RunContext) -> GateReport:
    """The gates, raising ``RunFailed`` (nothing is pushed) when one fails."""
    report = check_gates(ctx)
    if report.failures:
        raise RunFailed("gates before the push failed: " + "; ".join(report.failures))
    return report
