"""Push stage: send changed customers to one CRM target, merge what identity merged.

Only customers whose outbound properties changed since the target last accepted them are sent
(``concord.push.diff``), in batches of the target's size per object kind, each batch's outcomes
stored with it (``concord.push.send``); then merged-away customers are merged, marked or deleted
in the target (``concord.push.merges``), never left as duplicates. A dry run reports the plan
(``concord.push.plan``) and sends nothing. Before anything is sent the receivable gate
(``concord.customer360.receivable.gate``) is asked: when concord's open balances differ from the
ERPs' own receivables by more than ``push_gate.receivable_tolerance`` the push is held (the stage
is recorded as failed and ``PushHeld`` raised) unless the run says ``push_anyway``.
"""

from __future__ import annotations

from concord.contracts import ObjectKind, build_target, target_type
from concord.customer360.receivable import gate
from concord.errors import ConcordError, PushHeld
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.reports import PushReport
from concord.push.diff import MapFailure, PlannedUpsert, Refresh, candidates, unchanged_count
from concord.push.plan import batch_size, dry_run_plan
from concord.push.send import resolve_merges, send_batch, store_map_failures, store_refreshes
from concord.store import Reject
from concord.utc import utcnow


def push(ctx: RunContext, target_name: str) -> PushReport:
    """Send changed customers, then merges, to one target; store one outcome per record.

    A dry run (``RunOptions.dry_run``) sends nothing and reports the plan instead. ``calls`` are
    the API calls made (splits included, HTTP retries not).
    """
    started = utcnow()
    with ctx.store.engine.connect() as conn:
        verdict = gate(conn, ctx.config)
    held = verdict.message if verdict.held and not ctx.options.push_anyway else None
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
        record_stage(ctx, "push", target_name, started, PushReport(held=held), status="failed")
        raise PushHeld(held)
    tcfg = ctx.config.targets[target_name]
    report = PushReport()
    size = batch_size(tcfg, target_type(tcfg.type))
    target = build_target(tcfg)
    try:
        buffers: dict[ObjectKind, list[PlannedUpsert]] = {}
        failures: list[Reject] = []
        refreshes: list[Refresh] = []
        for item in candidates(ctx, target_name):
            if isinstance(item, MapFailure):
                failures.append(item.reject)
                if len(failures) >= 500:
                    store_map_failures(ctx, target_name, failures, report)
                    failures = []
                continue
            if isinstance(item, Refresh):
                refreshes.append(item)
                if len(refreshes) >= 2000:
                    store_refreshes(ctx, target_name, refreshes)
                    refreshes = []
                continue
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
        report.unchanged = unchanged_count(ctx, report.planned, report.mapping_failed)
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
