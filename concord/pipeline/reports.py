"""What each stage reports: one dataclass per stage, and the run report assembled from them.

A stage returns its report typed; ``as_dict`` is the form stored in ``stage_reports`` (and so
in the run report) and handed to Airflow's XCom, ``from_dict`` reads a stored one back. The run
report (``RunReport``) is the stored JSON document: every stage's report by stage and scope,
each with its ``status``, plus the run's error when it failed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NotRequired, Self, TypedDict


class StageReport:
    """Serialisation shared by every stage report (all are dataclasses of JSON values)."""

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON data: what the store keeps and Airflow passes on."""
        data: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """A stored report read back; keys this version does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class PullCounts(StageReport):
    """What one pull staged: pages and records, and how many were new, changed or unchanged.

    ``source_count``/``staged_count``: what the source says it holds in the window and how many
    of those concord staged (``count_how``: id listing or count endpoint; ``count_check``:
    ``agree`` or ``mismatch``, empty when the source cannot count); ``left_window``: records
    read that changed or vanished while the window was pulled (they come with the next window);
    ``repulled``: a mismatch had the window pulled again.
    """

    pages: int = 0
    records: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing_id: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    resumed: bool = False
    window_start: str | None = None
    window_end: str | None = None
    source_count: int | None = None
    staged_count: int | None = None
    count_how: str = ""
    count_check: str = ""
    left_window: int = 0
    repulled: bool = False

    def add(self, other: PullCounts) -> None:
        """Count ``other`` in too (the shards of one entity)."""
        for name in ("pages", "records", "new", "changed", "unchanged", "missing_id"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.excluded.items():
            self.excluded[reason] = self.excluded.get(reason, 0) + n
        self.resumed = self.resumed or other.resumed
        self.repulled = self.repulled or other.repulled
        self.left_window += other.left_window
        if other.source_count is not None and other.staged_count is not None:
            self.source_count = (self.source_count or 0) + other.source_count
            self.staged_count = (self.staged_count or 0) + other.staged_count
            self.count_how = self.count_how or other.count_how
            agree = self.source_count == self.staged_count and "mismatch" not in (
                self.count_check,
                other.count_check,
            )
            self.count_check = "agree" if agree else "mismatch"


@dataclass
class ExtractReport(PullCounts):
    """One source entity pulled (or its shards committed); ``watermark`` is where it now stands.

    ``revisited``: records of the entity's revisit set re-read whatever their cursor, of which
    ``revisit_changed`` were new or changed; ``triggered``: parent entity -> records re-read
    because a new or changed record of this entity names them, ``trigger_changed`` of them new
    or changed; ``swept``: the id sweep (``listed`` ids, ``tombstoned`` new tombstones,
    ``revived`` tombstones that came back), empty when no sweep ran.
    """

    watermark: str | None = None
    shards: int | None = None
    revisited: int = 0
    revisit_changed: int = 0
    triggered: dict[str, int] = field(default_factory=dict)
    trigger_changed: int = 0
    swept: dict[str, int] = field(default_factory=dict)


@dataclass
class ShardReport(PullCounts):
    """One shard of an entity pulled, or ``skipped`` because this run already committed it."""

    shard: str = ""
    high_cursor: str | None = None
    skipped: str | None = None


@dataclass
class MapReport(StageReport):
    """Pending raw records of one source entity mapped; drift is counted per source path.

    ``replayed`` records were pending again because the mapping changed since they were mapped
    (``replay="changed"``) or ``concord remap`` asked for all (``replay="all"``);
    ``quarantined`` canonical rows were set aside because their record turned bad.
    """

    records: int = 0
    mapped: int = 0
    rejected: int = 0
    replayed: int = 0
    replay: str = "changed"
    quarantined: int = 0
    mapping_fp: str = ""
    canonical_entity: str = ""
    workers: int = 0  # worker processes that mapped the batches (0: the stage's own process)
    unmapped_fields: dict[str, int] = field(default_factory=dict)
    missing_fields: dict[str, int] = field(default_factory=dict)


@dataclass
class ResolveReport(StageReport):
    """Clusters found, ids given and changed, links written, by which rules."""

    records: int = 0
    clusters: int = 0
    multi_record_clusters: int = 0
    new_ids: int = 0
    merges: int = 0
    splits: int = 0
    links_written: int = 0
    links_removed: int = 0
    comparisons: int = 0
    blocked_by_override: int = 0
    links_by_rule: dict[str, int] = field(default_factory=dict)
    refused_by_constraint: dict[str, int] = field(default_factory=dict)
    model: str = ""
    incremental: bool = False
    changed_records: int = 0
    relinked_records: int = 0  # records this run's rules linked (the rest kept their links)
    quarantined_clusters: int = 0


@dataclass
class Build360Report(StageReport):
    """Customer-360 rows computed and written, as of which business date; what did not convert.

    ``missing_rates`` lists, per currency, the dates without an exchange rate (those documents
    are left out, counted in ``unconverted_currencies``); ``receivable`` is the check of the
    open balances against the ERPs' own receivables (``concord.customer360.receivable``);
    ``churn_reason`` says why the fallback ran when it did. ``recomputed`` customers were read
    from their documents: all of them in a full rebuild (``full_reason`` says why), otherwise
    those whose inputs changed (``recomputed_changed``) and those whose figures crossed a date
    boundary (``recomputed_boundary``); every other row took the day's figures from stored totals.
    """

    customers: int = 0
    written: int = 0
    unchanged: int = 0
    recomputed: int = 0
    recomputed_changed: int = 0
    recomputed_boundary: int = 0
    full_reason: str = ""
    as_of: str = ""
    timezone: str = "UTC"
    unconverted_currencies: dict[str, int] = field(default_factory=dict)
    missing_rates: dict[str, list[str]] = field(default_factory=dict)
    receivable: dict[str, Any] = field(default_factory=dict)
    churn_model: str = ""
    churn_reason: str = ""
    churn_params: dict[str, float] | None = None


@dataclass
class PlanCounts(StageReport):
    """What a push plan holds (``concord push --dry-run`` and dry-run syncs)."""

    creates: int = 0
    updates: int = 0
    merges: int = 0
    unchanged: int = 0
    retries: int = 0
    mapping_failed: int = 0
    api_calls: int = 0


@dataclass
class PushReport(StageReport):
    """One target pushed: outcomes by kind, merges, API calls.

    ``accepted``/``rejected`` are what the reject-ratio check reads; ``rejected`` counts CRM
    refusals, failed merges and records the outbound mapping refused. A dry run sends nothing
    and carries its ``plan``. A resync (``resync``: ``verify`` or ``full``) says how many
    customers it ``checked`` and how many the CRM was ``missing`` or held ``different``
    (``unchanged``: those it held as concord would send them).
    """

    planned: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    retried_accepted: int = 0
    mapping_failed: int = 0
    merged: int = 0
    merge_failed: int = 0
    merge_deferred: int = 0
    calls: int = 0
    dry_run: bool = False
    plan: PlanCounts | None = None
    error: str | None = None
    held: str | None = None
    resync: str | None = None
    checked: int = 0
    missing: int = 0
    different: int = 0
    retired: int = 0
    retire_failed: int = 0


@dataclass
class ReconcileReport(StageReport):
    """Counts and money per source entity, push coverage per target, the receivable check."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    receivable: dict[str, Any] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    ok: bool = True
    dry_run: bool = False


@dataclass
class FailedStage(StageReport):
    """What is stored for a stage that raised: the one-line failure text."""

    error: str = ""


class RunReport(TypedDict):
    """The stored report of one run: stage -> scope -> that stage report plus its ``status``."""

    run_id: str
    stages: dict[str, dict[str, dict[str, Any]]]
    error: NotRequired[str]
    failures: NotRequired[list[str]]
