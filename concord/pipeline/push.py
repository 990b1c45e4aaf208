"""Push stage: send changed customers to one CRM target, merge what identity merged.

Only customers whose outbound properties changed since the target last accepted them are sent
(``concord.push.diff``), in batches of the target's size per object kind, each batch's outcomes
stored with it (``concord.push.send``); then merged-away customers are merged, marked or deleted
in the target (``concord.push.merges``), never left as duplicates; customers no ERP holds any
more are marked or archived (``concord.push.retire``), never left live. A dry run reports the plan
(``concord.push.plan``) and sends nothing. ``resync`` does not trust the push state: it reads the
CRM's records back and sends what is missing or different (``concord.push.resync``). Nothing is
sent past the gates (``concord.pipeline.gates``), nor past the receivable gate
(``concord.customer360.receivable.gate``): when concord's open balances differ from the ERPs' own
receivables by more than ``push_gate.receivable_tolerance`` the push is held (the stage is
recorded as failed and ``PushHeld`` raised) unless the run says ``push_anyway``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import NoReturn

from concord.contracts import ObjectKind, ReadingTarget, Target, build_target, target_type
from concord.customer360.receivable import gate
from concord.errors import ConcordError, PushError, PushHeld
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.gates import require_gates
from concord.pipeline.reports import PushReport
from concord.push.diff import MapFailure, PlannedUpsert, Refresh, candidates, unchanged_count
from concord.push.plan import batch_size, dry_run_plan
from concord.push.resync import Held, ResyncCounts, resync_items
from concord.push.retire import retire
from concord.push.send import (
    confirm_held,
    resolve_merges,
    send_batch,
    store_map_failures,
    store_refreshes,
)
from concord.store import Reject
from concord.store import tables as t
from concord.utc import utcnow

FLUSH_REJECTS, FLUSH_REFRESHES = 500, 2000


def send_all(
    ctx: RunContext,
    target: Target,
    target_name: str,
    items: Iterable[PlannedUpsert | MapFailure | Refresh | Held],
    report: PushReport,
) -> None:
    """Send upserts in batches per object kind; store map failures, refreshes and confirmations."""
    size = batch_size(
        ctx.config.targets[target_name], target_type(ctx.config.targets[target_name].type)
    )
    buffers: dict[ObjectKind, list[PlannedUpsert]] = {}
    failures: list[Reject] = []
    refreshes: list[Refresh] = []
    held: list[PlannedUpsert] = []
    for item in items:
        if isinstance(item, MapFailure):
            failures.append(item.reject)
            if len(failures) >= FLUSH_REJECTS:
                store_map_failures(ctx, target_name, failures, report)
                failures = []
        elif isinstance(item, Refresh):
            refreshes.append(item)
            if len(refreshes) >= FLUSH_REFRESHES:
                store_refreshes(ctx, target_name, refreshes)
                refreshes = []
        elif isinstance(item, Held):
            held.append(item.upsert)
            if len(held) >= FLUSH_REFRESHES:
                confirm_held(ctx, target_name, held)
                held = []
        else:
            buffer = buffers.setdefault(item.object_type, [])
            buffer.append(item)
            if len(buffer) >= size:
                send_batch(ctx, target, target_name, buffer, report)
                buffers[item.object_type] = []
    for buffer in buffers.values():
        if buffer:
            send_batch(ctx, target, target_name, buffer, report)
    store_map_failures(ctx, target_name, failures, report)
    store_refreshes(ctx, target_name, refreshes)
    confirm_held(ctx, target_name, held)


def push(ctx: RunContext, target_name: str, *, gates: bool = True) -> PushReport:
    """Send changed customers, then merges, to one target; store one outcome per record.

    The gates (``concord.pipeline.gates``) are checked first unless the caller just did
    (``gates=False``): past them nothing is sent. A dry run (``RunOptions.dry_run``) sends
    nothing and reports the plan instead. ``calls`` are the API calls made (splits included,
    HTTP retries not).
    """
    started = utcnow()
    ctx.store.refresh_statistics([t.customer360, t.customer360_daily, t.push_state])
    if gates and not ctx.options.dry_run:
        require_gates(ctx)
    held = receivable_hold(ctx)
    if ctx.options.dry_run:
        plan = dry_run_plan(ctx, target_name)
        counts = plan.counts()
        summary = PushReport(
            planned=len(plan.creates) + len(plan.updates),
            unchanged=counts.unchanged,
            mapping_failed=counts.mapping_failed,
            dry_run=True,
            plan=counts,
            held=held,
        )
        record_stage(ctx, "push", target_name, started, summary)
        return summary
    if held is not None:
        hold(ctx, target_name, started, held)
    report = PushReport()

    def body(target: Target) -> None:
        send_all(ctx, target, target_name, candidates(ctx, target_name), report)
        report.unchanged = unchanged_count(ctx, report.planned, report.mapping_failed)
        report.retired, report.retire_failed = retire(ctx, target, target_name)

    return with_target(ctx, target_name, started, report, body)


def resync(ctx: RunContext, target_name: str, *, full: bool = False) -> PushReport:
    """Read the target's records back and send what is missing or different (``full``: all).

    Stored as the run's push stage for the target, with what the read-back found. A target
    that cannot read its records back (no ``ReadingTarget``) can only be resynced ``full``.
    """
    started = utcnow()
    require_gates(ctx)
    held = receivable_hold(ctx)
    if held is not None:
        hold(ctx, target_name, started, held)
    tcfg = ctx.config.targets[target_name]
    report = PushReport(resync="full" if full else "verify")

    def body(target: Target) -> None:
        reader = None if full else target
        if reader is not None and not isinstance(reader, ReadingTarget):
            raise PushError(
                f"a {tcfg.type} target cannot read its records back; resync it with --full",
                target=target_name,
            )
        counts = ResyncCounts()
        send_all(ctx, target, target_name, resync_items(ctx, reader, target_name, counts), report)
        report.checked, report.missing = counts.checked, counts.missing
        report.different, report.unchanged = counts.different, counts.matching

    return with_target(ctx, target_name, started, report, body)


def receivable_hold(ctx: RunContext) -> str | None:
    """Why the receivable gate holds the push (None: it may go, or the run pushes anyway)."""
    with ctx.store.engine.connect() as conn:
        verdict = gate(conn, ctx.config)
    return verdict.message if verdict.held and not ctx.options.push_anyway else None


def hold(ctx: RunContext, target_name: str, started: datetime, held: str) -> NoReturn:
    """Record the target's push as held by the receivable gate and raise ``PushHeld``."""
    record_stage(ctx, "push", target_name, started, PushReport(held=held), status="failed")
    raise PushHeld(held)


def with_target(
    ctx: RunContext,
    target_name: str,
    started: datetime,
    report: PushReport,
    body: Callable[[Target], None],
) -> PushReport:
    """Build the target, run ``body`` with it, resolve merges, store the report; close it.

    A failure part-way stores the report as failed (what went through stays) and is raised.
    """
    target = build_target(ctx.config.targets[target_name])
    try:
        body(target)
        resolve_merges(ctx, target, target_name, report)
    except ConcordError as exc:
        report.error = exc.message
        report.calls = target.calls
        record_stage(ctx, "push", target_name, started, report, status="failed")
        raise
    finally:
        target.close()
    report.calls = target.calls
    record_stage(ctx, "push", target_name, started, report)
    return report
