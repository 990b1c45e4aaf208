"""Push plans: what a push to one target will do, before it does it (``concord push --dry-run``).

``dry_run_plan`` walks the same diff and merge lookup as the push (``concord.push.diff``,
``concord.push.merges``) without sending or storing anything, so the plan it prints is what the
push then does: creates with their properties, updates field by field, merges with what each
becomes in the target, the customers the outbound mapping refused, and the API calls it costs.
Batch sizes and merge costs come from the connector class (no secret is resolved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from concord.config import TargetConfig
from concord.contracts import Supersession, TargetType, target_type
from concord.pipeline.context import RunContext
from concord.pipeline.reports import PlanCounts
from concord.push.diff import MapFailure, PlannedUpsert, Refresh, candidates, unchanged_count
from concord.push.merges import supersessions
from concord.store import Reject


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
    mapping_failed: list[Reject] = field(default_factory=list)
    upsert_calls: int = 0
    merge_calls: int = 0

    @property
    def api_calls(self) -> int:
        """Calls the push will make: upsert batches plus merge calls."""
        return self.upsert_calls + self.merge_calls

    @property
    def retries(self) -> int:
        """Customers sent again after the target refused them last time."""
        return sum(1 for p in (*self.creates, *self.updates) if p.retry)

    def counts(self) -> PlanCounts:
        """How many of each the plan holds."""
        return PlanCounts(
            creates=len(self.creates),
            updates=len(self.updates),
            merges=len(self.merges),
            unchanged=self.unchanged,
            retries=self.retries,
            mapping_failed=len(self.mapping_failed),
            api_calls=self.api_calls,
        )

    def merge_effect(self, merge: Supersession) -> str:
        """What a merge becomes in the target (``forget``: never pushed, only local state)."""
        return self.merge_action if merge.remote else "forget"

    def as_dict(self) -> dict[str, Any]:
        """The plan as plain JSON-ready data (``concord push --dry-run --json``)."""
        return {
            "target": self.target,
            "target_type": self.target_type,
            "counts": self.counts().as_dict(),
            "api_calls": self.api_calls,
            "upsert_calls": self.upsert_calls,
            "merge_calls": self.merge_calls,
            "creates": [
                {
                    "concord_id": p.key,
                    "name": p.name,
                    "source_ids": list(p.source_ids),
                    "object_type": p.object_type,
                    "properties": p.stored,
                }
                for p in self.creates
            ],
            "updates": [
                {
                    "concord_id": p.key,
                    "name": p.name,
                    "source_ids": list(p.source_ids),
                    "object_type": p.object_type,
                    "retry": p.retry,
                    "changes": [
                        {"field": c.field, "old": c.old, "new": c.new} for c in p.changes()
                    ],
                }
                for p in self.updates
            ],
            "merges": [
                {
                    "absorbed": m.absorbed,
                    "survivor": m.survivor,
                    "becomes": self.merge_effect(m),
                    "absorbed_remote_id": m.absorbed_remote_id,
                }
                for m in self.merges
            ],
            "mapping_failed": [
                {"concord_id": r.source_id, "field": r.field, "reason": r.reason}
                for r in self.mapping_failed
            ],
        }


def batch_size(tcfg: TargetConfig, cls: TargetType) -> int:
    """Records a call: the config's ``batch_size`` if set, else the target's own best size."""
    return min(tcfg.explicit_batch_size or cls.default_batch, cls.max_batch)


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
    for item in candidates(ctx, target_name):
        if isinstance(item, MapFailure):
            plan.mapping_failed.append(item.reject)
            continue
        if isinstance(item, Refresh):
            continue
        (plan.updates if item.action == "update" else plan.creates).append(item)
        by_kind[item.object_type] = by_kind.get(item.object_type, 0) + 1
    plan.unchanged = unchanged_count(
        ctx, len(plan.creates) + len(plan.updates), len(plan.mapping_failed)
    )
    plan.upsert_calls = sum(math.ceil(n / size) for n in by_kind.values())
    plan.merges = supersessions(ctx, target_name)
    remote_by_kind: dict[str, int] = {}
    for s in plan.merges:
        if s.remote:
            remote_by_kind[s.object_type] = remote_by_kind.get(s.object_type, 0) + 1
    plan.merge_calls = sum(int(cls.merge_calls(tcfg, n)) for n in remote_by_kind.values())
    return plan
