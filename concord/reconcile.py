"""Reconcile stage: counts and money totals per source entity, staged vs canonical vs pushed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from concord.run import RunContext, record_stage
from concord.store import tables as t
from concord.store.store import utcnow


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
                staged = conn.execute(
                    select(func.count())
                    .select_from(raw)
                    .where(raw.c.source == sname, raw.c.entity == ename)
                ).scalar_one()
                canonical = conn.execute(
                    select(func.count()).select_from(table).where(table.c.source == sname)
                ).scalar_one()
                rejected = conn.execute(
                    select(func.count(func.distinct(rj.c.source_id))).where(
                        rj.c.source == sname,
                        rj.c.entity == ename,
                        rj.c.stage == "map",
                        rj.c.resolved_run.is_(None),
                    )
                ).scalar_one()
                pending = conn.execute(
                    select(func.count())
                    .select_from(raw)
                    .where(raw.c.source == sname, raw.c.entity == ename, raw.c.pending.is_(True))
                ).scalar_one()
                money = _money_totals(conn, table, sname)
                row = {
                    "source": sname,
                    "entity": ename,
                    "canonical_entity": mapping.entity,
                    "staged": staged,
                    "canonical": canonical,
                    "rejected": rejected,
                    "pending": pending,
                    "money": money,
                }
                if staged != canonical + rejected + pending:
                    out["mismatches"].append(
                        f"{sname}/{ename}: staged {staged} != canonical {canonical} + rejected "
                        f"{rejected} + pending {pending}"
                    )
                out["entities"].append(row)
        ps = t.push_state
        for tname in ctx.config.targets:
            counts = dict(
                conn.execute(
                    select(ps.c.status, func.count())
                    .where(ps.c.target == tname)
                    .group_by(ps.c.status)
                ).all()
            )
            out["targets"].append({"target": tname, **{k: int(v) for k, v in counts.items()}})
    record_stage(ctx, "reconcile", "all", started, out)
    return out


def _money_totals(conn: Any, table: Any, source: str) -> dict[str, str]:
    from concord.store.types import money_or_zero

    column = {"orders": "gross_total", "invoices": "total", "payments": "amount"}.get(table.name)
    if column is None:
        return {}
    rows = conn.execute(
        select(table.c.currency, func.sum(table.c[column]))
        .where(table.c.source == source)
        .group_by(table.c.currency)
    )
    return {cur: str(money_or_zero(total)) for cur, total in rows}
