"""Showing a push plan: what ``concord push --dry-run`` prints, as rich tables or as JSON.

The plan comes from ``concord.push.dry_run_plan``; this module only renders it: a summary line with
the API calls the push will cost, the creates with their properties, the updates field by field
with old and new values, the merges with what each becomes in the target, and the customers the
outbound mapping refused. Long lists are cut at ``limit`` rows with a count of the rest.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from concord.contracts import Supersession
from concord.push import PushPlan

MAX_VALUE = 60


def _show(value: Any) -> str:
    if value is None:
        return "∅"
    text = str(value)
    if text == "":
        return '""'
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def merge_effect(plan: PushPlan, merge: Supersession) -> str:
    """What a merge becomes in the target (``forget``: never pushed, only local state changes)."""
    return plan.merge_action if merge.remote else "forget"


def summary_line(plan: PushPlan) -> Text:
    s = plan.summary()
    line = Text.assemble(
        (f"push → {plan.target}", "bold"),
        f" ({plan.target_type}): ",
        (f"{s['creates']} create{'s' if s['creates'] != 1 else ''}", "green"),
        ", ",
        (f"{s['updates']} update{'s' if s['updates'] != 1 else ''}", "yellow"),
        ", ",
        (f"{s['merges']} merge{'s' if s['merges'] != 1 else ''}", "magenta"),
        f", {s['unchanged']} unchanged",
    )
    if s["retries"]:
        line.append(f", {s['retries']} retried after a reject")
    if s["mapping_failed"]:
        line.append(f", {s['mapping_failed']} refused by the mapping", "red")
    line.append(
        f"; {plan.api_calls} API call{'s' if plan.api_calls != 1 else ''} "
        f"({plan.upsert_calls} upsert batch{'es' if plan.upsert_calls != 1 else ''} of up to "
        f"{plan.batch_size}, {plan.merge_calls} for merges)"
    )
    return line


def render_plan(plan: PushPlan, *, limit: int = 50) -> RenderableType:
    """The whole plan as one renderable for ``console.print``."""
    parts: list[RenderableType] = [summary_line(plan)]
    if plan.creates:
        table = Table("concord id", "object", "properties", title="Creates", title_justify="left")
        for p in plan.creates[:limit]:
            props = ", ".join(f"{k}={_show(v)}" for k, v in sorted(p.stored.items()))
            table.add_row(p.key + (" (retry)" if p.retry else ""), p.object_type, props)
        parts.append(table)
        parts.extend(_more(len(plan.creates), limit))
    if plan.updates:
        table = Table("concord id", "field", "old", "new", title="Updates", title_justify="left")
        for p in plan.updates[:limit]:
            changes = p.changes()
            if not changes:
                table.add_row(p.key, "(retry of a rejected send)", "", "")
            for i, change in enumerate(changes):
                label = (p.key + (" (retry)" if p.retry else "")) if i == 0 else ""
                table.add_row(label, change.field, _show(change.old), _show(change.new))
        parts.append(table)
        parts.extend(_more(len(plan.updates), limit))
    if plan.merges:
        table = Table(
            "absorbed", "survivor", "becomes", "target record", title="Merges", title_justify="left"
        )
        for m in plan.merges[:limit]:
            table.add_row(
                m.absorbed, m.survivor, merge_effect(plan, m), m.absorbed_remote_id or "-"
            )
        parts.append(table)
        parts.extend(_more(len(plan.merges), limit))
    if plan.mapping_failed:
        table = Table(
            "concord id", "field", "reason", title="Refused by the mapping", title_justify="left"
        )
        for r in plan.mapping_failed[:limit]:
            table.add_row(str(r["source_id"]), str(r.get("field") or "-"), str(r["reason"]))
        parts.append(table)
        parts.extend(_more(len(plan.mapping_failed), limit))
    return Group(*parts)


def _more(total: int, limit: int) -> list[RenderableType]:
    return [Text(f"… and {total - limit} more", style="dim")] if total > limit else []


def plan_as_dict(plan: PushPlan) -> dict[str, Any]:
    """The plan as plain JSON-ready data (``concord push --dry-run --json``)."""
    return {
        "target": plan.target,
        "target_type": plan.target_type,
        "counts": plan.summary(),
        "api_calls": plan.api_calls,
        "upsert_calls": plan.upsert_calls,
        "merge_calls": plan.merge_calls,
        "creates": [
            {"concord_id": p.key, "object_type": p.object_type, "properties": p.stored}
            for p in plan.creates
        ],
        "updates": [
            {
                "concord_id": p.key,
                "object_type": p.object_type,
                "retry": p.retry,
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in p.changes()],
            }
            for p in plan.updates
        ],
        "merges": [
            {
                "absorbed": m.absorbed,
                "survivor": m.survivor,
                "becomes": merge_effect(plan, m),
                "absorbed_remote_id": m.absorbed_remote_id,
            }
            for m in plan.merges
        ],
        "mapping_failed": [
            {"concord_id": r["source_id"], "field": r.get("field"), "reason": r["reason"]}
            for r in plan.mapping_failed
        ],
    }
