"""Resolve stage: link every canonical customer into golden customers with stable concord ids.

Reads the customers (``concord.identity.normalise``), links them by the configured rules and
overrides (``linking``, ``constraints``), gives each cluster its id across runs (``ids``) and
writes in one transaction: new golden records, merges (``golden.status='merged'``,
``merged_into``), splits, and only the ``identity_links`` rows that changed, with the events.

A night links again only what its changes can move. With deterministic rules only, and the
same basis as the last resolve (``resolve_basis``: identity config, overrides, accepted
reviews, ``LINKING_VERSION``; kept in ``identity_resolves``), it re-links the key-connected
components holding a new, changed or vanished record (``identity.components``) and leaves the
others' stored links: the result is the full resolve's. With the probabilistic rule, only the
changed records are scored against the rest (``score_between``), the unchanged tree links are
kept, and the components those pairs and links touch are linked the same way. Refusals in the
report count the records linked this run.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select, tuple_, update

from concord.config import IdentityConfig
from concord.hashing import json_digest
from concord.identity.components import component_rules, touched_components
from concord.identity.constraints import NEVER_MERGE
from concord.identity.guard import guard
from concord.identity.ids import Assignment, assign_ids
from concord.identity.linking import link_records, related_pairs
from concord.identity.models import current_model, latest_model
from concord.identity.normalise import load_customer_records, record_fingerprint
from concord.identity.scoring import score_between
from concord.model import record_key, split_record_key
from concord.overrides import Overrides, load_overrides, overrides_path
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.reports import ResolveReport
from concord.store import Store, keep_newest
from concord.store import tables as t
from concord.utc import utcnow


def resolve(ctx: RunContext) -> ResolveReport:
    """The stage: resolve identities for the run and record the report."""
    started = utcnow()
    ctx.store.refresh_statistics(
        [t.customers, t.identity_links, t.identity_records, t.golden, t.identity_events]
    )
    report = resolve_identities(
        ctx.store, ctx.config.identity, ctx.run_id, base_dir=ctx.config.path.parent
    )
    record_stage(ctx, "resolve", "all", started, report)
    return report


def resolve_identities(
    store: Store,
    config: IdentityConfig,
    run_id: str,
    *,
    base_dir: Path | None = None,
    full: bool = False,
) -> ResolveReport:
    """Link all canonical customers and persist clusters with stable ids, in one transaction.

    ``base_dir`` is where a relative overrides path is read from (the config file's folder).
    Unless ``full``, a night re-links only the touched components (deterministic rules, same
    basis) or scores only new and changed records (a stored model and stored links); the guard
    holds suspicious clusters for review.
    """
    overrides = load_overrides(overrides_path(config.overrides, base_dir))
    records = load_customer_records(store, config, remember=True)
    model = None
    prob = config.rule("probabilistic")
    stored = latest_model(store) if prob is not None else None
    if prob is not None:
        model = current_model(store, config, len(records), records, run_id)
    keys = [r.key for r in records]
    fingerprints = [record_fingerprint(r) for r in records]
    il, g = t.identity_links, t.golden
    with store.engine.connect() as conn:  # one read of the links (the run holds the run lock)
        prior_rows = {
            record_key(s, sid): (gid, rule, score, matched, fp)
            for s, sid, gid, rule, score, matched, fp in conn.execute(
                select(
                    il.c.source,
                    il.c.source_id,
                    il.c.concord_id,
                    il.c.rule,
                    il.c.score,
                    il.c.matched_to,
                    il.c.fingerprint,
                )
            )
        }
        accepted = _accepted(conn)
        last_basis = _last_basis(conn)
    basis = resolve_basis(config, overrides, accepted)
    before = {
        k: (matched, rule, score, fp) for k, (_g, rule, score, matched, fp) in prior_rows.items()
    }
    prior = {k: v[0] for k, v in prior_rows.items()}
    touched = [i for i, k in enumerate(keys) if k not in before or before[k][3] != fingerprints[i]]
    same_model = stored is not None and model is not None and stored[0] == model
    incremental = (
        not full
        and prob is not None
        and same_model
        and bool(before)
        and len(touched) <= INCREMENTAL_SHARE * len(records)
    )
    # Re-link only the components holding a changed record (a record of theirs gone counts) and
    # keep the rest as stored: with deterministic rules whatever the share changed, with the
    # probabilistic rule on an incremental night (its pairs scored for the changed records).
    current = set(keys)
    gone_ids = {prior[k] for k in prior_rows if k not in current}
    changed_at = {*touched, *(i for i, k in enumerate(keys) if prior.get(k) in gone_ids)}
    by_component = (
        not full
        and bool(before)
        and last_basis == basis
        and (
            component_rules(config.rules)
            or (incremental and component_rules(config.rules, scored=True))
        )
    )
    kept: list[tuple[int, int, str, float]] = []
    scored = None
    if incremental and model is not None and prob is not None:
        changed_set = set(touched)
        index = {k: i for i, k in enumerate(keys)}
        for i, k in enumerate(keys):
            matched, rule, score_, _fp = before.get(k, (None, "", 0.0, None))
            j = index.get(matched) if matched else None
            if j is not None and i not in changed_set and j not in changed_set:
                kept.append((i, j, rule, float(score_)))
        scored = score_between(records, touched, model, floor=min(prob.min_probability, 0.5))
    scope = list(range(len(records)))
    if by_component:
        edges: list[tuple[int, int]] = []
        if scored is not None and prob is not None:
            above = scored.probability >= prob.min_probability
            edges = list(
                zip(scored.left[above].tolist(), scored.right[above].tolist(), strict=True)
            )
        scope = touched_components(records, changed_at, prior, config.rules, edges)
    linked = [records[i] for i in scope] if by_component else records
    lkeys = [keys[i] for i in scope] if by_component else keys
    if by_component and scored is not None:
        position = {g: n for n, g in enumerate(scope)}
        kept = [
            (position[i], position[j], rule, s)
            for i, j, rule, s in kept
            if i in position and j in position
        ]
        scored = scored.within(scope, len(records))
    if scored is not None:
        result = link_records(linked, config, overrides, model=model, scored=scored, kept=kept)
    else:
        result = link_records(linked, config, overrides, model=model)
    in_scope = set(lkeys)
    untouched: dict[str, int] = {}  # golden id -> records, of the components left as they were
    kept_rules: dict[str, int] = {}
    if by_component:
        for key, (gid, rule, _score, _matched, _fp) in prior_rows.items():
            if key in current and key not in in_scope:
                untouched[gid] = untouched.get(gid, 0) + 1
                kept_rules[rule] = kept_rules.get(rule, 0) + 1
    report = ResolveReport(
        records=len(records),
        clusters=len(result.clusters) + len(untouched),
        multi_record_clusters=sum(1 for c in result.clusters if len(c) > 1)
        + sum(1 for n in untouched.values() if n > 1),
        comparisons=result.comparisons,
        blocked_by_override=result.refusals.get(NEVER_MERGE, 0),
    )
    report.refused_by_constraint = {k: v for k, v in result.refusals.items() if k != NEVER_MERGE}
    report.incremental = incremental or by_component
    report.changed_records = len(touched)
    report.relinked_records = len(linked)
    if result.model is not None:
        report.model = ", ".join(f"{k}: {v}" for k, v in sorted(result.model.method.items()))
    report.links_by_rule = kept_rules
    for link in result.links:
        report.links_by_rule[link.rule] = report.links_by_rule.get(link.rule, 0) + 1
    now = utcnow()
    with store.begin() as conn:
        golden = dict(conn.execute(select(g.c.concord_id, g.c.status)).all())
        rule_types = {r.name: r.type for r in config.rules}
        held = guard(result, lkeys, prior, config.guard, rule_types, accepted)
        report.quarantined_clusters = len(held)
        report.clusters = len(result.clusters) + len(untouched)
        if held:
            conn.execute(
                t.identity_reviews.insert(),
                [
                    {
                        "run_id": run_id,
                        "created_at": now,
                        "status": "pending",
                        "reason": h.reason[:300],
                        "records": h.records,
                        "parts": h.parts,
                        "bridges": h.bridges,
                    }
                    for h in held
                ],
            )
        between: dict[frozenset[str], tuple[str, str, str]] = {}
        for i, link in enumerate(result.links):
            if link.matched_to is None:
                continue
            pa, pb = prior.get(lkeys[i]), prior.get(link.matched_to)
            if pa and pb and pa != pb:
                between.setdefault(frozenset((pa, pb)), (link.rule, link.matched_to, lkeys[i]))
        # An id no record holds any more (its customer archived or deleted in every ERP) stays
        # free for the cluster whose natural id it is: a customer that comes back keeps its id,
        # and the CRM record concord marked retired, instead of getting a second one.
        held_ids = set(prior.values())
        taken = {gid for gid, status in golden.items() if status == "merged" or gid in held_ids}
        assignment = assign_ids(
            [[lkeys[i] for i in c] for c in result.clusters], prior, taken, between
        )
        report.new_ids = len(assignment.new_ids)
        report.merges = sum(1 for e in assignment.events if e.kind == "merge")
        report.splits = sum(1 for e in assignment.events if e.kind == "split")
        _persist_golden(conn, assignment, golden, run_id)
        ids = {k: prior[k] for k in keys if k not in in_scope} | assignment.ids
        related = result.related if not by_component else related_pairs(records)
        _persist_parents(conn, ids, keys, related, run_id)
        changed: list[dict[str, Any]] = []
        for n, key in enumerate(lkeys):
            link = result.links[n]
            row = (assignment.ids[key], link.rule, link.score, link.matched_to)
            fp = fingerprints[scope[n]]
            if prior_rows.get(key) != (*row, fp):
                source, sid = split_record_key(key)
                changed.append(
                    {
                        "source": source,
                        "source_id": sid,
                        "concord_id": row[0],
                        "rule": row[1],
                        "score": row[2],
                        "matched_to": row[3],
                        "run_id": run_id,
                        "fingerprint": fp,
                    }
                )
        for start in range(0, len(changed), 5000):
            store.upsert(conn, il, changed[start : start + 5000], ["source", "source_id"])
        report.links_written = len(changed)
        gone = sorted(set(prior_rows) - current)
        for start in range(0, len(gone), 500):
            pairs = [split_record_key(k) for k in gone[start : start + 500]]
            conn.execute(delete(il).where(tuple_(il.c.source, il.c.source_id).in_(pairs)))
        report.links_removed = len(gone)
        if assignment.events:
            conn.execute(
                t.identity_events.insert(), [e.row(run_id, now) for e in assignment.events]
            )
        mode = "components" if by_component else "incremental" if incremental else "full"
        _record_resolve(conn, run_id, now, basis, mode, len(records), len(linked))
    return report


INCREMENTAL_SHARE = 0.2
"""Above this share of new or changed records a run re-clusters everything."""

LINKING_VERSION = "1"
"""Bump when a change to linking, the guard or the ids makes every stored link stale."""

KEEP_RESOLVES = 30
"""``identity_resolves`` rows kept (the newest); a night reads only the last."""


def resolve_basis(
    config: IdentityConfig, overrides: Overrides, accepted: set[frozenset[str]]
) -> str:
    """What every stored link rests on besides the records: the same means they still hold."""
    return json_digest(
        {
            "version": LINKING_VERSION,
            "identity": config.model_dump(
                mode="json", include={"rules", "free_mail_domains", "max_block_size", "guard"}
            ),
            "force_merge": sorted(sorted((p.a, p.b)) for p in overrides.force_merge),
            "never_merge": sorted(sorted((p.a, p.b)) for p in overrides.never_merge),
            "accepted": sorted(sorted(records) for records in accepted),
        }
    )


def _last_basis(conn: Connection) -> str | None:
    r = t.identity_resolves
    found = conn.execute(select(r.c.basis).order_by(r.c.id.desc()).limit(1)).scalar()
    return None if found is None else str(found)


def _record_resolve(
    conn: Connection,
    run_id: str,
    at: datetime,
    basis: str,
    mode: str,
    records: int,
    relinked: int,
) -> None:
    r = t.identity_resolves
    conn.execute(
        r.insert().values(
            run_id=run_id,
            resolved_at=at,
            basis=basis,
            mode=mode,
            records=records,
            relinked=relinked,
        )
    )
    keep_newest(conn, r, KEEP_RESOLVES)


def _accepted(conn: Connection) -> set[frozenset[str]]:
    r = t.identity_reviews
    return {
        frozenset(rows)
        for (rows,) in conn.execute(select(r.c.records).where(r.c.status == "accepted"))
    }


def _persist_parents(
    conn: Connection,
    ids: dict[str, str],
    keys: list[str],
    related: list[tuple[int, int, str]],
    run_id: str,
) -> None:
    """``parent_concord_id``: the golden id a related account (bill-to, parent) points at.

    ``ids`` is every record key's golden id after this run; ``related`` are pairs of indices
    into ``keys``.
    """
    g = t.golden
    wanted: dict[str, str | None] = {}
    for i, j, _kind in related:
        child, parent = ids[keys[i]], ids[keys[j]]
        if child != parent:
            wanted.setdefault(child, parent)
    current = dict(
        conn.execute(
            select(g.c.concord_id, g.c.parent_concord_id).where(g.c.parent_concord_id.is_not(None))
        ).all()
    )
    for gid in current:
        wanted.setdefault(gid, None)
    for gid, target in wanted.items():
        if current.get(gid) != target:
            conn.execute(
                update(g)
                .where(g.c.concord_id == gid)
                .values(parent_concord_id=target, updated_run=run_id)
            )


def _persist_golden(
    conn: Connection, assignment: Assignment, golden: dict[str, str], run_id: str
) -> None:
    g = t.golden
    new_rows = [
        {
            "concord_id": gid,
            "status": "active",
            "merged_into": None,
            "created_run": run_id,
            "updated_run": run_id,
        }
        for gid in assignment.new_ids
        if gid not in golden
    ]
    for start in range(0, len(new_rows), 5000):
        conn.execute(g.insert(), new_rows[start : start + 5000])
    for e in assignment.events:
        if e.kind != "merge":
            continue
        survivor, absorbed = e.concord_id, e.other_id
        conn.execute(
            update(g)
            .where(g.c.concord_id == absorbed)
            .values(status="merged", merged_into=survivor, updated_run=run_id)
        )
        # Ids merged earlier into the absorbed one now point at the survivor (no chains).
        conn.execute(
            update(g)
            .where(g.c.merged_into == absorbed)
            .values(merged_into=survivor, updated_run=run_id)
        )
    active = set(assignment.ids.values())
    revived = sorted(gid for gid in active if golden.get(gid) == "merged")
    if revived:
        conn.execute(
            update(g)
            .where(g.c.concord_id.in_(revived))
            .values(status="active", merged_into=None, updated_run=run_id)
        )
