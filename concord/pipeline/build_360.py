"""Build-360 stage: one customer-360 row per active golden customer, written when it changed.

Figures come from ``concord.customer360.metrics`` (documents at their own exchange rates and
business dates), scores from ``segments`` (RFM, value tier, lifecycle) and ``churn`` (MBG/NBD,
or the recency heuristic with the reason), the check against the ERPs' own receivables from
``receivable``, golden values from ``concord.identity.survivorship``. Every row says the
business date its figures are as of. A row is rewritten only when its content hash changes;
rows of customers no longer active are removed. The report lists what could not be converted
(per currency and date), the receivable differences and which churn model ran.

The build is incremental: it reads the documents only of the golden customers whose inputs
changed since the last build (rows a new run wrote, rows gone: per-customer counts; links and
identity events) or whose figures change with time alone (``customer360_inputs``: the 12 months,
overdue, late shipments, rates taking effect). Every other customer's row is its stored row with
the figures of the day recomputed from stored totals: as_of, days since the last order,
lifecycle, RFM, value tier, churn and the receivable check, which depend on the date or on the
whole base. The result equals a full rebuild; a full rebuild runs when asked, on the first
build, and when what the stored figures rest on changed (config, code, rates of the past,
as_of moving back or far ahead).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, create_model
from sqlalchemy import Connection, and_, func, or_, select

from concord.config import PipelineConfig
from concord.customer360.churn import ChurnScores, LastFit, churn_scores
from concord.customer360.dates import BusinessCalendar
from concord.customer360.fx import FxTable, fx_table
from concord.customer360.metrics import (
    CENT,
    CustomerTotals,
    Figures,
    RecordBalance,
    aggregate,
    aggregate_billing,
    collect,
    country_of,
    linked_customers,
    orders,
)
from concord.customer360.receivable import ReceivableCheck, check_records
from concord.customer360.segments import lifecycle_stage, rfm_scores, value_tiers
from concord.customer360.stored import (
    DAILY,
    base_hash,
    daily_hash,
    split,
)
from concord.hashing import json_digest
from concord.identity.survivorship import field_rules, golden_values
from concord.model import (
    BalanceGap,
    CanonicalModel,
    ChurnExplanation,
    Customer360,
    FxUse,
    ValueTier,
)
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.reports import Build360Report
from concord.store import Store, keep_newest
from concord.store import tables as t
from concord.utc import as_utc, utcnow

MISSING_LISTED = 20  # dates listed per currency without a rate
CODE_VERSION = "19.2"
"""Bump when a change to the figures' code makes every stored row stale (a full rebuild)."""
CHUNK = 2000  # golden customers read per query of an incremental build
FULL_SHARE = 0.5  # above this share to recompute, a build reads everything (a full rebuild)
MAX_JUMP_DAYS = 90  # as_of further ahead than this since the last build: a full rebuild
DAY_COLUMNS = ("concord_id", "data", "content_hash", "value_tier", "updated_at", "run_id")
"""The columns of a ``customer360_daily`` row, in the order the build writes them."""
Daily: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Customer360Daily",
    __base__=CanonicalModel,
    **{
        name: (Customer360.model_fields[name].annotation, Customer360.model_fields[name])
        for name in DAILY
    },
)
"""The daily figures of a 360 row, serialised exactly as ``Customer360`` serialises them."""


def _churn(gid: str, scores: ChurnScores, period_days: int) -> dict[str, Any] | None:
    """The fields of a row's ``ChurnExplanation`` (JSON-native values); None without a history."""
    history = scores.histories.get(gid)
    if history is None:
        return None
    return {
        "model": scores.model,
        "params": scores.params.as_dict() if scores.params else {},
        "x": history.x,
        "t_x": round(history.t_x, 6),
        "T": round(history.T, 6),
        "period_days": period_days,
        "reason": scores.reason,
    }


def _fx_uses(a: CustomerTotals) -> list[FxUse]:
    out = []
    for (currency, source), (notes, count) in sorted((a.fx_uses or {}).items()):
        listed = sorted(notes)[:5]  # sorted: the same whichever order the documents came in
        if len(notes) > 5:
            listed.append(f"(+{len(notes) - 5} more)")
        out.append(FxUse(currency=currency, source=source, rates=listed, documents=count))
    return out


def _basis(a: CustomerTotals) -> str:
    from_erp = [not r.has_invoices and r.erp_receivable is not None for r in a.records.values()]
    if not any(from_erp):
        return "documents"
    return "erp_receivable" if all(from_erp) else "mixed"


def _missing(report: Build360Report, missing: dict[tuple[str, date], int]) -> None:
    by_currency: dict[str, list[str]] = {}
    for currency, day in sorted(missing):
        by_currency.setdefault(currency, []).append(day.isoformat())
    report.missing_rates = {}
    for currency, days in by_currency.items():
        more = len(days) - MISSING_LISTED
        listed = days[:MISSING_LISTED]
        report.missing_rates[currency] = [*listed, f"(+{more} more)"] if more > 0 else listed
    counts: dict[str, int] = {}
    for (currency, _day), n in missing.items():
        counts[currency] = counts.get(currency, 0) + n
    report.unconverted_currencies = counts


@dataclass
class Population:
    """The scores that depend on the whole base, and what every row's daily figures need."""

    today: date
    tiers: dict[str, ValueTier]
    rfm: dict[str, tuple[int, int, int]]
    scores: ChurnScores
    check: ReceivableCheck
    fx: FxTable
    config: PipelineConfig
    as_of: datetime

    @classmethod
    def of(
        cls,
        accs: dict[str, CustomerTotals],
        fx: FxTable,
        config: PipelineConfig,
        as_of: datetime,
        today: date,
        last: LastFit | None = None,
    ) -> Population:
        """Tiers, RFM and churn over ``accs`` (documents read, or totals stored).

        ``last`` is the last build's churn fit (kept for ``churn.refit_days``, then the start).
        """
        return cls(
            today,
            value_tiers({gid: a.revenue for gid, a in accs.items()}),
            rfm_scores(accs, today),
            churn_scores(accs, today, config, last),
            ReceivableCheck(config.base_currency),
            fx,
            config,
            as_of,
        )

    def __post_init__(self) -> None:
        self._period_days = self.config.identity.churn.period_days
        self.rules = field_rules(self.config.identity.survivorship)  # the same for every row
        # the figures every row shares, in the JSON form Customer360 serialises them to
        shared_values: dict[str, Any] = {"as_of": self.today, "updated_at": self.as_of}
        shared = Daily.model_construct(**shared_values)
        self._shared_json = shared.model_dump(mode="json", include={"as_of", "updated_at"})

    def _figures(self, gid: str, a: CustomerTotals) -> tuple[Any, ...]:
        """One row's figures of the day (it checks the records against the ERPs' receivables).

        (days since the last order, ERP receivable, difference, R, F, M, tier, lifecycle,
        P(alive), churn risk), the last two rounded as the row holds them.
        """
        today = self.today
        erp_receivable, erp_difference = check_records(
            gid, a, self.fx, self.config.base_currency, today, self.check
        )
        alive = self.scores.p_alive.get(gid)
        return (
            (today - a.last_order_day).days if a.last_order_day else None,
            None if erp_receivable is None else erp_receivable.quantize(CENT),
            None if erp_difference is None else erp_difference.quantize(CENT),
            *self.rfm.get(gid, (None, None, None)),
            self.tiers.get(gid, ValueTier.C),
            lifecycle_stage(a, today),
            None if alive is None else round(alive, 4),
            None if alive is None else round(1.0 - alive, 4),
        )

    def daily(self, gid: str, a: CustomerTotals) -> dict[str, Any]:
        """The row's daily figures, as ``Customer360`` holds them."""
        days, erp, diff, r_score, f_score, m_score, tier, stage, alive, risk = self._figures(gid, a)
        churn = _churn(gid, self.scores, self._period_days)
        return {
            "as_of": self.today,
            "days_since_last_order": days,
            "erp_receivable": erp,
            "erp_receivable_difference": diff,
            "rfm_recency": r_score,
            "rfm_frequency": f_score,
            "rfm_monetary": m_score,
            "value_tier": tier,
            "lifecycle_stage": stage,
            "p_alive": alive,
            "churn_risk": risk,
            # computed values of the right types: not validated again
            "churn": None if churn is None else ChurnExplanation.model_construct(**churn),
            "updated_at": self.as_of,
        }

    def daily_json(self, gid: str, a: CustomerTotals) -> dict[str, Any]:
        """The row's daily figures in JSON form, as ``Daily`` dumps ``daily()`` (a test holds).

        Built without a model per row: a night writes them as every kept customer's daily row.
        """
        days, erp, diff, r_score, f_score, m_score, tier, stage, alive, risk = self._figures(gid, a)
        return {
            **self._shared_json,
            "days_since_last_order": days,
            "erp_receivable": None if erp is None else str(erp),
            "erp_receivable_difference": None if diff is None else str(diff),
            "rfm_recency": r_score,
            "rfm_frequency": f_score,
            "rfm_monetary": m_score,
            "value_tier": tier.value,
            "lifecycle_stage": stage.value,
            "p_alive": alive,
            "churn_risk": risk,
            "churn": _churn(gid, self.scores, self._period_days),
        }


def _row(gid: str, a: CustomerTotals, pop: Population) -> Customer360 | None:
    """A golden customer's 360 row from its documents; None without a name to show."""
    config = pop.config
    best = golden_values(a.candidates, pop.rules)
    if "name" not in best:
        return None
    return Customer360(
        concord_id=gid,
        name=best["name"],
        email=best.get("email"),
        phone=best.get("phone"),
        address=best.get("address"),
        tax_id=best.get("tax_id"),
        country=country_of(a, best),
        is_person=a.is_person,
        source_ids=sorted(a.source_ids),
        customer_numbers=sorted(a.numbers, key=lambda n: (n.source, n.number, n.record)),
        emails=list(dict.fromkeys(a.emails)),
        phones=list(dict.fromkeys(a.phones)),
        timezone=config.timezone,
        orders_count=a.orders,
        lifetime_revenue=a.revenue.quantize(CENT),
        revenue_12m=a.revenue_12m.quantize(CENT),
        average_order_value=(a.revenue / a.orders).quantize(CENT) if a.orders else Decimal("0.00"),
        first_order_at=as_utc(a.first_order),
        last_order_at=as_utc(a.last_order),
        open_orders=a.open_orders,
        open_quotes=a.open_quotes,
        shipments_in_transit=a.in_transit,
        shipments_late_90d=a.late_90d,
        invoiced_total=a.invoiced.quantize(CENT),
        paid_total=a.paid.quantize(CENT),
        open_balance=a.open_balance.quantize(CENT),
        overdue_balance=a.overdue.quantize(CENT),
        average_days_to_pay=round(float(a.days_to_pay_weighted / a.days_to_pay_weight), 1)
        if a.days_to_pay_weight
        else None,
        unallocated_paid=a.unallocated.quantize(CENT),
        balance_gaps=[
            BalanceGap(reason=reason, amount=amount.quantize(CENT))
            for reason, amount in sorted((a.gaps or {}).items())
            if amount.quantize(CENT) != 0
        ],
        open_balance_basis=_basis(a),
        fx=_fx_uses(a),
        unconverted=dict(sorted((a.unconverted or {}).items())),
        base_currency=config.base_currency,
        **pop.daily(gid, a),
    )


def _fit_record(scores: ChurnScores) -> dict[str, Any] | None:
    """What the next build keeps or starts its churn fit from (None: no fit this build)."""
    if scores.fitted is None:  # no fit tried (too few repeat customers)
        return None
    return LastFit(scores.params, scores.fitted, scores.reason).as_dict()


def _report_population(report: Build360Report, pop: Population, config: PipelineConfig) -> None:
    report.as_of = pop.today.isoformat()
    report.timezone = config.timezone
    report.churn_model = pop.scores.model
    report.churn_reason = pop.scores.reason
    report.churn_params = pop.scores.params.as_dict() if pop.scores.params else None


def compute(
    store: Store,
    config: PipelineConfig,
    as_of: datetime,
    report: Build360Report,
    invoice_sources: frozenset[str] | None = None,
) -> Iterator[Customer360]:
    """Compute every active golden customer's 360 row from all documents (not yet written)."""
    calendar = BusinessCalendar(config.timezone)
    accs: dict[str, CustomerTotals] = {}
    with store.engine.connect() as conn:
        fx = fx_table(conn, config)
        figures = Figures(fx, calendar, config.base_currency, as_of, invoice_sources)
        collect(conn, accs, figures)
        aggregate(conn, accs, figures)
        last = _last_build(conn)
    pop = Population.of(accs, fx, config, as_of, figures.today, last.churn if last else None)
    _report_population(report, pop, config)
    for gid in sorted(accs):
        row = _row(gid, accs[gid], pop)
        if row is not None:
            yield row
    _missing(report, dict(fx.missing))
    report.receivable = pop.check.as_dict()


# --- incremental builds: what changed since the last build ---------------------------------

DOCUMENTS = (t.orders, t.shipments, t.invoices, t.payments)
RUN_TABLES = (t.customers, *DOCUMENTS, t.identity_links)


def _invoice_sources(conn: Connection) -> frozenset[str]:
    return frozenset(conn.execute(select(t.invoices.c.source).distinct()).scalars().all())


def _basis_digest(config: PipelineConfig, invoice_sources: frozenset[str]) -> str:
    """What every stored figure rests on besides the documents and the rates."""
    return json_digest(
        {
            "code": CODE_VERSION,
            "base_currency": config.base_currency,
            "timezone": config.timezone,
            "survivorship": config.identity.survivorship.model_dump(mode="json"),
            "churn": config.identity.churn.model_dump(mode="json"),
            "invoice_sources": sorted(invoice_sources),
        }
    )


def _seen_runs(conn: Connection) -> set[str]:
    """Run ids of the rows the 360 reads (each through its run-id index)."""
    seen: set[str] = set()
    for table in RUN_TABLES:
        seen.update(conn.execute(select(table.c.run_id).distinct()).scalars().all())
    return seen


def _counts(conn: Connection) -> dict[str, str]:
    """Per golden customer with a record: how many records, documents and cross allocations.

    A row a run writes carries its run id; a row removed (quarantined, excluded, a link gone)
    leaves none, but lowers a count here. Each table is counted per ERP customer in SQL, from
    the ``(source, customer_id)`` index alone; the links name each ERP customer's golden one.
    """
    il, c = t.identity_links, t.customers
    links: dict[tuple[str, str], str] = {
        (source, sid): gid
        for source, sid, gid in conn.execute(select(il.c.source, il.c.source_id, il.c.concord_id))
    }
    counts: dict[str, list[int]] = {}

    def add(source: str, customer: str, i: int, n: int) -> None:
        gid = links.get((source, customer))
        if gid is not None:
            counts.setdefault(gid, [0] * 7)[i] += n

    for source, sid in conn.execute(select(c.c.source, c.c.source_id)):
        add(source, sid, 0, 1)
    for i, table in enumerate(DOCUMENTS, 1):
        per_customer = select(table.c.source, table.c.customer_id, func.count()).group_by(
            table.c.source, table.c.customer_id
        )
        for source, customer, n in conn.execute(per_customer):
            add(source, customer, i, n)
    # a payment of one customer against another's invoice: each side's figures read the other
    pay, inv = t.payments, t.invoices
    cross = (
        select(inv.c.source, pay.c.customer_id, inv.c.customer_id, func.count())
        .select_from(
            inv.join(pay, and_(pay.c.source == inv.c.source, pay.c.invoice_id == inv.c.source_id))
        )
        .where(pay.c.customer_id != inv.c.customer_id)
        # grouped by the invoice's side: SQLite then scans the payments once rather than through
        # their customer index, a table lookup per payment
        .group_by(inv.c.source, inv.c.customer_id, pay.c.customer_id)
    )
    if conn.execute(select(inv.c.source).limit(1)).first() is not None:
        for source, payer, invoiced, n in conn.execute(cross):
            add(source, payer, 5, n)
            add(source, invoiced, 6, n)
    return {gid: ",".join(map(str, n)) for gid, n in counts.items() if n[0] > 0}


def _touched(conn: Connection, runs: Sequence[str]) -> set[str]:
    """Golden customers whose records, links or documents rows of ``runs`` wrote (indexed)."""
    il, c, pay, inv = t.identity_links, t.customers, t.payments, t.invoices
    runs = list(runs)
    out: set[str] = set()
    if not runs:
        return out

    def gids(q: Any) -> None:
        out.update(conn.execute(q).scalars().all())

    gids(select(il.c.concord_id).where(il.c.run_id.in_(runs)))
    gids(
        select(il.c.concord_id)
        .select_from(c.join(il, and_(il.c.source == c.c.source, il.c.source_id == c.c.source_id)))
        .where(c.c.run_id.in_(runs))
    )
    for table in DOCUMENTS:
        gids(
            select(il.c.concord_id)
            .select_from(
                table.join(
                    il, and_(il.c.source == table.c.source, il.c.source_id == table.c.customer_id)
                )
            )
            .where(table.c.run_id.in_(runs))
        )
    # the other side of an allocation: the invoice's customer of a changed payment ...
    gids(
        select(il.c.concord_id)
        .select_from(
            pay.join(
                inv, and_(inv.c.source == pay.c.source, inv.c.source_id == pay.c.invoice_id)
            ).join(il, and_(il.c.source == inv.c.source, il.c.source_id == inv.c.customer_id))
        )
        .where(pay.c.run_id.in_(runs))
    )
    # ... and the payments' customers of a changed invoice
    gids(
        select(il.c.concord_id)
        .select_from(
            inv.join(
                pay, and_(pay.c.source == inv.c.source, pay.c.invoice_id == inv.c.source_id)
            ).join(il, and_(il.c.source == pay.c.source, il.c.source_id == pay.c.customer_id))
        )
        .where(inv.c.run_id.in_(runs))
    )
    ev = t.identity_events  # created, merged, split: both ids
    for gid, other in conn.execute(
        select(ev.c.concord_id, ev.c.other_id).where(ev.c.run_id.in_(runs))
    ):
        out.add(gid)
        if other:
            out.add(other)
    return out


def _runs_since(conn: Connection, since: datetime) -> set[str]:
    """Runs started, finished or still going since ``since`` (a rerun keeps its run id)."""
    r = t.runs
    q = select(r.c.run_id).where(
        or_(r.c.started_at >= since, r.c.finished_at >= since, r.c.finished_at.is_(None))
    )
    return set(conn.execute(q).scalars())


def _first_rate_change(before: list[list[str]], now: list[list[str]]) -> date | None:
    """The earliest date from which a conversion can differ between two rate tables."""
    changed = {tuple(r) for r in before} ^ {tuple(r) for r in now}
    if not changed:
        return None
    return min(date.fromisoformat(r[3]) for r in changed)


@dataclass
class LastBuild:
    """What the previous build stored about itself."""

    run_id: str
    built_at: datetime
    as_of: datetime
    today: date
    basis: str
    rates: list[list[str]]
    seen_runs: set[str]
    churn: LastFit | None


def _last_build(conn: Connection) -> LastBuild | None:
    b = t.customer360_builds
    row = conn.execute(select(b).order_by(b.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return LastBuild(
        row["run_id"],
        as_utc(row["built_at"]),
        as_utc(row["as_of"]),
        row["today"],
        row["basis"],
        list(row["rates"]),
        set(row["seen_runs"]),
        LastFit.of(row["churn_params"]),
    )


def _full_reason(
    full: bool, last: LastBuild | None, basis: str, as_of: datetime, today: date, stored: int
) -> str:
    """Why this build reads every document ("" for an incremental build)."""
    if full:
        return "full rebuild asked for"
    if last is None or not stored:
        return "first build"
    if basis != last.basis:
        return "the config of the figures, the sources with invoices or the code changed"
    if as_of < last.as_of:
        return f"as_of moved back ({last.as_of.isoformat()} -> {as_of.isoformat()})"
    if (today - last.today).days > MAX_JUMP_DAYS:
        return f"as_of jumped {(today - last.today).days} days ahead"
    return ""


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _shell(row: Any) -> CustomerTotals:
    """A golden customer's totals as stored: what the base's scores and the check read."""
    a = CustomerTotals(orders=row.orders, revenue=Decimal(row.revenue))
    a.first_order_day, a.last_order_day = row.first_day, row.last_day
    for ref, source, erp, currency, has_invoices, open_erp, open_base, unconverted in row.records:
        a.records[ref] = RecordBalance(
            source=source,
            erp_receivable=_dec(erp),
            erp_currency=currency,
            has_invoices=has_invoices,
            open_erp=Decimal(open_erp),
            open_base=Decimal(open_base),
            unconverted=unconverted,
        )
    return a


def _inputs_row(
    gid: str, a: CustomerTotals, counts: str, has_row: bool, run_id: str
) -> dict[str, Any]:
    return {
        "concord_id": gid,
        "counts": counts,
        "has_row": has_row,
        "orders": a.orders,
        "revenue": str(a.revenue),
        "first_day": a.first_order_day,
        "last_day": a.last_order_day,
        "records": [
            [
                ref,
                r.source,
                None if r.erp_receivable is None else str(r.erp_receivable),
                r.erp_currency,
                r.has_invoices,
                str(r.open_erp),
                str(r.open_base),
                r.unconverted,
            ]
            for ref, r in sorted(a.records.items())
            if r.erp_receivable is not None  # the only records the receivable check reads
        ],
        "missing": [
            [cur, day.isoformat(), n] for (cur, day), n in sorted((a.misses or {}).items())
        ],
        "boundary_day": a.boundary_day,
        "boundary_at": a.boundary_at,
        "fx_day": a.fx_day,
        "today_fx": a.today_fx,
        "run_id": run_id,
    }


class StoredInputs(NamedTuple):
    """What deciding a build needs of a customer's stored inputs (the rest is read if kept)."""

    counts: str
    has_row: bool


def _order_totals(
    conn: Connection, figures: Figures, gids: Sequence[str] | None
) -> dict[str, CustomerTotals]:
    """The order figures of ``gids`` (None: every linked customer), all a base's scores read.

    The records and the other documents are read later, a chunk of customers at a time, as
    the rows are written: only the chunk's candidates and invoices are in memory at once.
    """
    if gids is None:
        accs = {gid: CustomerTotals() for gid in linked_customers(conn)}
        orders(conn, accs, figures)
        return accs
    out: dict[str, CustomerTotals] = {}
    for i in range(0, len(gids), CHUNK):
        part = {gid: CustomerTotals() for gid in linked_customers(conn, gids[i : i + CHUNK])}
        orders(conn, part, figures, list(part))
        out.update(part)
    return out


def build(
    store: Store,
    config: PipelineConfig,
    as_of: datetime,
    run_id: str,
    invoice_sources: frozenset[str] | None = None,
    *,
    full: bool = False,
) -> Build360Report:
    """Compute and write changed 360 rows; rows of customers no longer active are removed.

    ``invoice_sources`` are the sources with an invoices entity (their records' open balance
    comes from invoices, the others' from the ERP's receivable); None: those with invoices in
    the store. Only the customers whose inputs changed or whose figures crossed a date boundary
    are read from their documents, unless ``full`` (or ``customer360.incremental: false``) or a
    change of what every figure rests on asks for a full rebuild (``report.full_reason``).
    """
    report = Build360Report()
    built_at = utcnow()
    c360, day, inp = t.customer360, t.customer360_daily, t.customer360_inputs
    builds = t.customer360_builds
    calendar = BusinessCalendar(config.timezone)
    today = calendar.today(as_of)
    with store.begin() as conn:
        sources = invoice_sources if invoice_sources is not None else _invoice_sources(conn)
        fx = fx_table(conn, config)
        figures = Figures(fx, calendar, config.base_currency, as_of, sources)
        basis = _basis_digest(config, sources)
        rates = fx.rate_rows()
        seen = _seen_runs(conn)
        last = _last_build(conn)
        counts = _counts(conn)
        stored = {
            gid: StoredInputs(n, has_row)
            for gid, n, has_row in conn.execute(
                select(inp.c.concord_id, inp.c.counts, inp.c.has_row)
            )
        }
        existing, bases = {}, {}
        for gid, content, based in conn.execute(
            select(c360.c.concord_id, day.c.content_hash, c360.c.base_hash).select_from(
                c360.outerjoin(day, day.c.concord_id == c360.c.concord_id)
            )
        ):
            existing[gid], bases[gid] = content, based
        asked = full or not config.customer360.incremental
        reason = _full_reason(asked, last, basis, as_of, today, len(stored))
        changed: set[str] = set()
        boundary: set[str] = set()
        if not reason:
            assert last is not None
            # the last build's own run wrote its rows before that build (push and reconcile
            # write no documents or links), unless it is this run again (a rerun)
            recent = _runs_since(conn, last.built_at) - ({last.run_id} - {run_id})
            runs = sorted((seen - last.seen_runs) | ({run_id} | recent) & seen)
            changed = _touched(conn, runs)
            changed.update(
                gid
                for gid, n in counts.items()
                if gid not in stored
                or stored[gid].counts != n
                or (stored[gid].has_row and gid not in existing)
            )
            changed &= set(counts)
            edges = [inp.c.boundary_day <= today, inp.c.boundary_at < as_of]
            since = _first_rate_change(last.rates, rates)
            if since is not None:
                edges.append(inp.c.fx_day >= since)
            if today > last.today and any(
                last.today < date.fromisoformat(r[3]) <= today for r in rates
            ):
                edges.append(inp.c.today_fx.is_(True))  # a rate took effect: as_of's own rate
            boundary = set(conn.execute(select(inp.c.concord_id).where(or_(*edges))).scalars())
            boundary = (boundary & set(counts)) - changed
            if len(changed) + len(boundary) > FULL_SHARE * max(len(counts), 1):
                reason = (
                    f"{len(changed) + len(boundary):,} of {len(counts):,} customers to recompute"
                )
        accs = _order_totals(conn, figures, None if reason else sorted(changed | boundary))
        report.full_reason = reason
        report.recomputed = len(accs)
        report.recomputed_changed = 0 if reason else len(changed)
        report.recomputed_boundary = 0 if reason else len(boundary)
        base: dict[str, CustomerTotals] = dict(accs)
        kept = set() if reason else {gid for gid in counts if gid not in accs and gid in stored}
        kept_missing: list[list[Any]] = []
        if kept:
            for kept_row in conn.execute(select(inp), execution_options={"yield_per": CHUNK}):
                if kept_row.concord_id in kept:
                    base[kept_row.concord_id] = _shell(kept_row)
                    kept_missing.extend(kept_row.missing)
        pop = Population.of(base, fx, config, as_of, today, last.churn if last else None)
        in_base = set(base)
        _report_population(report, pop, config)
        seen_rows: set[str] = set()
        batch: list[dict[str, Any]] = []
        days: list[tuple[Any, ...]] = []  # customer360_daily rows, in the driver's form
        inputs: list[dict[str, Any]] = []
        (stamp,) = store.driver_processors(t.customer360_daily, ["updated_at"])
        updated_at = stamp(as_of) if stamp else as_of

        def day_row(gid: str, daily: dict[str, Any], h: str) -> None:
            daily["content_hash"] = h
            days.append(
                (gid, orjson.dumps(daily).decode(), h, daily["value_tier"], updated_at, run_id)
            )
            if len(days) >= CHUNK:
                write_days()

        def write_days() -> None:
            store.upsert_rows(
                conn, t.customer360_daily, DAY_COLUMNS, days, ["concord_id"], unique=True
            )
            report.written += len(days)
            days.clear()

        order = sorted(base)
        todo = sorted(accs)  # read a chunk of these at a time, as the loop reaches them
        done = 0
        for gid in order:
            a = base.pop(gid)  # done with it after this row: the memory is the chunk's
            if gid in kept:
                if not stored[gid].has_row:
                    continue
                # the documents did not change: only the daily row is written
                daily = pop.daily_json(gid, a)
                h = daily_hash(bases.get(gid) or "", daily)
                report.customers += 1
                seen_rows.add(gid)
                if existing.get(gid) == h:
                    report.unchanged += 1
                    continue
                day_row(gid, daily, h)
                continue
            if done % CHUNK == 0:  # a's records and billing come with the next chunk's
                chunk = todo[done : done + CHUNK]
                collect(conn, accs, figures, chunk)
                aggregate_billing(conn, accs, figures, chunk)
            del accs[gid]
            done += 1
            row = _row(gid, a, pop)
            inputs.append(_inputs_row(gid, a, counts.get(gid, ""), row is not None, run_id))
            if len(inputs) >= CHUNK:
                store.upsert(conn, inp, inputs, ["concord_id"])
                inputs = []
            if row is None:
                continue
            data = row.model_dump(mode="json")
            report.customers += 1
            bh = base_hash(data)
            h = daily_hash(bh, data)
            seen_rows.add(gid)
            if existing.get(gid) == h:
                report.unchanged += 1
                continue
            figures_of_documents, daily = split(data)
            if bases.get(gid) != bh:  # else its documents figures are as stored
                batch.append(
                    {
                        "concord_id": gid,
                        "name": str(row.name.value)[:300],
                        "data": figures_of_documents,
                        "base_hash": bh,
                        "updated_at": as_of,
                        "run_id": run_id,
                    }
                )
                if len(batch) >= CHUNK:
                    store.upsert(conn, c360, batch, ["concord_id"])
                    batch = []
            day_row(gid, daily, h)
        store.upsert(conn, inp, inputs, ["concord_id"])
        store.upsert(conn, c360, batch, ["concord_id"])
        write_days()
        gone = sorted(set(existing) - seen_rows)
        for i in range(0, len(gone), CHUNK):
            part = gone[i : i + CHUNK]
            conn.execute(c360.delete().where(c360.c.concord_id.in_(part)))
            conn.execute(day.delete().where(day.c.concord_id.in_(part)))
        dropped = sorted(set(stored) - in_base)
        for i in range(0, len(dropped), CHUNK):
            conn.execute(inp.delete().where(inp.c.concord_id.in_(dropped[i : i + CHUNK])))
        missing = Counter(fx.missing)
        for currency, day, n in kept_missing:
            missing[(currency, date.fromisoformat(day))] += n
        _missing(report, dict(missing))
        report.receivable = pop.check.as_dict()
        conn.execute(
            builds.insert().values(
                run_id=run_id,
                built_at=built_at,
                as_of=as_of,
                today=today,
                basis=basis,
                rates=rates,
                seen_runs=sorted(seen | {run_id}),
                mode="full" if reason else "incremental",
                reason=reason,
                churn_params=_fit_record(pop.scores),
            )
        )
        keep_newest(conn, builds, 30)
    return report


def build_360(ctx: RunContext) -> Build360Report:
    """The stage: compute and write the 360 rows as of the run's ``as_of``; record the report.

    ``--full-refresh`` rebuilds every row from the documents.
    """
    started = utcnow()
    read = [t.identity_links, t.customers, t.orders, t.shipments, t.invoices, t.payments]
    ctx.store.refresh_statistics([*read, t.customer360, t.customer360_daily, t.customer360_inputs])
    invoice_sources = frozenset(
        source for (source, _entity), m in ctx.mappings.items() if m.entity == "invoices"
    )
    report = build(
        ctx.store,
        ctx.config,
        ctx.as_of,
        ctx.run_id,
        invoice_sources,
        full=ctx.options.full_refresh,
    )
    record_stage(ctx, "build_360", "all", started, report)
    return report
