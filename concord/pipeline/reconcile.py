"""Reconcile stage: do the source pull, the canonical store and the CRM push agree?

For every source entity it
checks what the source said it holds in the pulled window against what concord staged of it (the
extract's count check), counts over the whole store (every staged record is canonical, rejected
or still pending) and, for what this run pulled, counts and money totals per currency: the
pulled payloads run through the entity's mapping on one side, the canonical rows written for
them on the other. For every target it checks that each golden customer with a 360 row was
pushed (accepted or rejected with a reason) unless the run was a dry run. Any difference is
listed in ``mismatches`` with source, entity and numbers, so the run report flags it; so is a
difference between the 360 rows' open balances and the ERPs' own receivables (``receivable``,
the same sum the push gate reads). Reconciliation never fails the run by itself. Work is
proportional to what the run pulled, read in batches; above ``MONEY_SAMPLE`` records the money
re-check covers a deterministic sample (the counts stay exact).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Connection, Table, and_, case, func, select, true

from concord.customer360.receivable import gate
from concord.errors import RecordRejected
from concord.mapping import Mapping
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.reports import ReconcileReport
from concord.store import tables as t
from concord.store.counts import (
    canonical_count,
    canonical_of,
    pending_count,
    rejected_count,
    staged_count,
)
from concord.store.types import money_or_zero
from concord.utc import utcnow

# The money column of each canonical entity that has one.
MONEY_COLUMNS: dict[str, str] = {"orders": "gross_total", "invoices": "total", "payments": "amount"}
BATCH = 2000
# Money of at most about this many canonical records a run per source entity is re-derived from
# the pulled payloads (a deterministic sample by payload hash above it; counts stay exact).
MONEY_SAMPLE = 20_000


def reconcile(ctx: RunContext) -> ReconcileReport:
    """Counts and money totals per source entity and per target; mismatches listed."""
    started = utcnow()
    out = ReconcileReport()
    # PostgreSQL: the counts join raw_state to the canonical tables, planned by key only with
    # fresh statistics (a first night's tables have none yet)
    ctx.store.refresh_statistics([t.raw_state, *t.CANONICAL_TABLES.values()])
    with ctx.store.engine.connect() as conn:
        pulls = extract_reports(conn, ctx.run_id)
        for sname, scfg in ctx.config.sources.items():
            for ename in scfg.entities:
                mapping = ctx.mappings[(sname, ename)]
                prefix = scfg.entities[ename].id_prefix
                row = entity_counts(conn, sname, ename, mapping, prefix)
                pulled_report = pulls.get(f"{sname}/{ename}", {})
                source_count = pulled_report.get("source_count")
                staged_count = pulled_report.get("staged_count")
                failed = str(pulled_report.get("error") or "")
                if "the source holds" in failed:  # the count check failed the entity
                    out.mismatches.append(f"{sname}/{ename}: {failed}")
                if source_count is not None and staged_count is not None:
                    row["source_count"], row["staged_count"] = source_count, staged_count
                    if source_count != staged_count:
                        out.mismatches.append(
                            f"{sname}/{ename}: the source holds {source_count} records in the "
                            f"window, concord staged {staged_count}"
                        )
                if row["staged"] != row["canonical"] + row["rejected"] + row["pending"]:
                    out.mismatches.append(
                        f"{sname}/{ename}: staged {row['staged']} != canonical "
                        f"{row['canonical']} + rejected {row['rejected']} + pending "
                        f"{row['pending']}"
                    )
                pulled = pulled_this_run(conn, ctx.run_id, sname, ename, mapping, prefix)
                row["this_run"] = pulled
                out.mismatches.extend(f"{sname}/{ename}: {m}" for m in pulled.pop("problems"))
                out.entities.append(row)
        wanted = ctx.options.targets
        for tname, tcfg in ctx.config.targets.items():
            if not tcfg.enabled or (wanted is not None and tname not in wanted):
                continue
            body = target_counts(conn, tname)
            if body["not_pushed"] and not ctx.options.dry_run:
                out.mismatches.append(
                    f"target {tname}: {body['not_pushed']} of {body['customers']} customers "
                    "neither pushed nor rejected"
                )
            out.targets.append(body)
        verdict = gate(conn, ctx.config)
        out.receivable = {"customers": verdict.customers, "difference": str(verdict.difference)}
        if verdict.difference:
            out.mismatches.append(
                f"open balances differ from the ERPs' own receivables by {verdict.difference} "
                f"{ctx.config.base_currency} over {verdict.customers} checked customers"
            )
    out.ok = not out.mismatches
    out.dry_run = ctx.options.dry_run
    record_stage(ctx, "reconcile", "all", started, out)
    return out


def extract_reports(conn: Connection, run_id: str) -> dict[str, dict[str, Any]]:
    """This run's extract reports by ``source/entity`` (their source and staged counts)."""
    sr = t.stage_reports
    rows = conn.execute(
        select(sr.c.scope, sr.c.report).where(sr.c.run_id == run_id, sr.c.stage == "extract")
    ).all()
    return {str(scope): dict(body or {}) for scope, body in rows}


def entity_counts(
    conn: Connection, source: str, entity: str, mapping: Mapping, prefix: str = ""
) -> dict[str, Any]:
    """Whole-store counts for one source entity and canonical money totals per currency."""
    table = t.CANONICAL_TABLES[mapping.entity]
    money: dict[str, str] = {}
    if MONEY_COLUMNS.get(table.name) is None:
        canonical = canonical_count(conn, source, entity, table, prefix)
    else:
        canonical, money = canonical_count_and_money(conn, table, source, entity, prefix)
    return {
        "source": source,
        "entity": entity,
        "canonical_entity": mapping.entity,
        "staged": staged_count(conn, source, entity),
        "canonical": canonical,
        "rejected": rejected_count(conn, source, entity),
        "pending": pending_count(conn, source, entity),
        "money": money,
    }


def canonical_count_and_money(
    conn: Connection, table: Table, source: str, entity: str, prefix: str = ""
) -> tuple[int, dict[str, str]]:
    """The entity's canonical rows (as ``canonical_count`` counts them) and money per currency.

    One pass over the join of the entity's ``raw_state`` rows (its index) to the canonical
    keys, instead of a count and a money sum that each joined every staged record to its row:
    the count takes mapped records (not pending), the money what the source still holds
    (tombstones left out). No JSON is read.
    """
    column = MONEY_COLUMNS[table.name]
    st = t.raw_state
    live = table.c.state.is_(None)
    rows = conn.execute(
        select(
            table.c.currency,
            func.sum(case((st.c.pending.is_(False), 1), else_=0)),
            func.sum(case((live, 1), else_=0)),
            func.sum(case((live, table.c[column]), else_=None)),
        )
        .select_from(st.join(table, canonical_of(table, prefix, st)))
        .where(st.c.source == source, st.c.entity == entity)
        .group_by(table.c.currency)
    ).all()
    canonical = sum(int(mapped or 0) for _cur, mapped, _live, _total in rows)
    money = {str(cur): str(money_or_zero(total)) for cur, _mapped, held, total in rows if held}
    return canonical, money


def _mapped_payloads(
    conn: Connection, where: Any, table: Table, column: str, prefix: str
) -> Iterator[list[tuple[str, bytes, str, Decimal | None]]]:
    """Pulled payloads of canonical records matching ``where``, with their stored money.

    Batches of (source id, pulled payload, canonical currency, canonical amount), streamed from
    one query in no particular order (the caller sums them); ``where`` is on the records'
    ``raw_state``. One query, not pages by source id: each page's ``ORDER BY .. LIMIT`` over
    the run's rows had PostgreSQL read and sort all of them again (issue 19: 13 s of a
    medium first night's 23 s reconcile).
    """
    raw, st = t.raw_records, t.raw_state
    rows = conn.execution_options(yield_per=BATCH).execute(
        select(st.c.source_id, raw.c.payload, table.c.currency, table.c[column])
        .select_from(st.join(raw, t.RAW_WITH_STATE).join(table, canonical_of(table, prefix, st)))
        .where(where)
    )
    for part in rows.partitions():
        yield [(str(r[0]), bytes(r[1]), str(r[2]), r[3]) for r in part]


def sample_filter(pulled: int) -> tuple[Any, float]:
    """A deterministic payload-hash filter keeping about MONEY_SAMPLE of ``pulled`` rows.

    Returns the filter and the share it keeps (1.0: every row).
    """
    if pulled <= MONEY_SAMPLE:
        return true(), 1.0
    share = MONEY_SAMPLE / pulled
    bound = f"{int(share * 0x10000):04x}"
    return t.raw_state.c.hash < bound, share


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def pulled_this_run(
    conn: Connection, run_id: str, source: str, entity: str, mapping: Mapping, prefix: str = ""
) -> dict[str, Any]:
    """What this run pulled (new or changed payloads) against what became of each record.

    Every pulled record must be canonical, an open reject or still pending (counted in SQL); for
    canonical ones the money the mapping gives for the pulled payload must equal the stored
    amount, summed per currency (a stale or half-written canonical row shows as a difference).
    What the run pulled is read through ``raw_state``'s index of the run that staged each
    payload, so the work follows the pull, not the entity's size.
    """
    raw, rj = t.raw_state, t.rejects
    table = t.CANONICAL_TABLES[mapping.entity]
    column = MONEY_COLUMNS.get(table.name)
    this_run = and_(raw.c.source == source, raw.c.entity == entity, raw.c.run_id == run_id)
    joined = raw.join(table, canonical_of(table, prefix, raw))
    done = and_(this_run, raw.c.pending.is_(False))

    def count(query: Any) -> int:
        return int(conn.execute(query).scalar_one())

    pulled, pending = (
        int(n or 0)
        for n in conn.execute(
            select(func.count(), func.sum(case((raw.c.pending.is_(True), 1), else_=0))).where(
                this_run
            )
        ).one()
    )
    canonical = count(select(func.count()).select_from(joined).where(done))
    has_canonical = select(table.c.source_id).where(canonical_of(table, prefix, raw)).exists()
    has_reject = (
        select(rj.c.id)
        .where(
            rj.c.source == raw.c.source,
            rj.c.entity == raw.c.entity,
            rj.c.source_id == raw.c.source_id,
            rj.c.stage == "map",
            rj.c.resolved_run.is_(None),
        )
        .exists()
    )
    rejected = count(
        select(func.count(func.distinct(rj.c.source_id)))
        .select_from(
            rj.join(
                raw,
                and_(
                    raw.c.source == rj.c.source,
                    raw.c.entity == rj.c.entity,
                    raw.c.source_id == rj.c.source_id,
                ),
            )
        )
        .where(
            rj.c.source == source,
            rj.c.entity == entity,
            rj.c.stage == "map",
            rj.c.resolved_run.is_(None),
            done,
            ~has_canonical,
        )
    )
    lost = pulled - pending - canonical - rejected
    problems: list[str] = []
    if lost:
        examples = conn.execute(
            select(raw.c.source_id).where(done, ~has_canonical, ~has_reject).limit(5)
        ).scalars()
        problems.append(
            f"{lost} records pulled this run are neither canonical, rejected nor pending "
            f"(e.g. {', '.join(map(str, examples))})"
        )
    result: dict[str, Any] = {
        "pulled": pulled,
        "canonical": canonical,
        "rejected": rejected,
        "pending": pending,
        "lost": lost,
    }
    if column is None:
        return {**result, "problems": problems}
    sample, share = sample_filter(canonical)
    store_money: dict[str, Decimal] = defaultdict(Decimal)
    pull_money: dict[str, Decimal] = defaultdict(Decimal)
    checked = 0
    for batch in _mapped_payloads(conn, and_(done, sample), table, column, prefix):
        for _sid, payload, currency, stored in batch:
            checked += 1
            store_money[currency] += money_or_zero(stored)
            try:
                amount = _money(mapping.apply(orjson.loads(payload)).get(column))
            except RecordRejected:
                amount = None
            pull_money[currency] += amount or Decimal(0)
    for currency in sorted(set(pull_money) | set(store_money)):
        pulled_total = pull_money.get(currency, Decimal(0))
        stored_total = store_money.get(currency, Decimal(0))
        if pulled_total != stored_total:
            problems.append(
                f"{currency} total {pulled_total} in the pull != {stored_total} in the "
                f"canonical store ({checked} records checked)"
            )
    return {
        **result,
        "money_checked": checked,
        "money_sampled": share < 1.0,
        "pull_money": {c: str(v) for c, v in sorted(pull_money.items())},
        "canonical_money": {c: str(v) for c, v in sorted(store_money.items())},
        "problems": problems,
    }


def target_counts(conn: Connection, target: str) -> dict[str, Any]:
    """Push states of one target against the golden customers that have a 360 row."""
    ps, c360 = t.push_state, t.customer360
    counts = {
        str(status): int(n)
        for status, n in conn.execute(
            select(ps.c.status, func.count()).where(ps.c.target == target).group_by(ps.c.status)
        ).all()
    }
    customers = conn.execute(select(func.count()).select_from(c360)).scalar_one()
    not_pushed = conn.execute(
        select(func.count())
        .select_from(
            c360.outerjoin(ps, and_(ps.c.concord_id == c360.c.concord_id, ps.c.target == target))
        )
        .where(ps.c.concord_id.is_(None))
    ).scalar_one()
    return {"target": target, "customers": int(customers), "not_pushed": int(not_pushed), **counts}
