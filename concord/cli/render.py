"""Everything the CLI shows, in one place: the consoles, the progress display and each rendering.

Run summaries (also written to Airflow task logs), customer-360 tables, a golden customer whole,
why two records are or are not one customer, push plans, runs and rejects. Commands build data
with library calls and hand it here; nothing here reads the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from concord.customer360.lookup import CustomerView
from concord.errors import RecordRejected
from concord.identity.explain import Explanation
from concord.model import record_key
from concord.push.plan import PushPlan

console = Console(highlight=False)
if not console.is_terminal:
    console.width = max(console.width, 140)
err_console = Console(stderr=True, highlight=False)


@contextmanager
def progress_events() -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """A rich progress display fed by pipeline events (hidden when not on a terminal)."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>8,.0f} records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_event(name: str, data: dict[str, Any]) -> None:
            if name == "stage":
                key = f"{data['stage']} {data['scope']}"
                tasks[key] = progress.add_task(key, total=None)
                tasks["current"] = tasks[key]
            elif name in ("page", "mapped", "pushed") and "current" in tasks:
                progress.advance(tasks["current"], data.get("records", 0))

        yield on_event


def run_summary(report: Mapping[str, Any]) -> Table:
    """Records pulled/mapped/rejected per source entity and pushed per target."""
    stages = report.get("stages", {})
    table = Table(title=f"Run {report.get('run_id', '')}", title_justify="left")
    for col in (
        "source / entity",
        "pulled",
        "new",
        "changed",
        "mapped",
        "rejected",
        "schema drift",
    ):
        table.add_column(col, justify="left" if col.endswith(("entity", "fields")) else "right")
    scopes = list(dict.fromkeys([*stages.get("extract", {}), *stages.get("map", {})]))
    for scope in scopes:
        ex = stages.get("extract", {}).get(scope, {})
        mp = stages.get("map", {}).get(scope, {})
        drift = [f"+{k}" for k in sorted(mp.get("unmapped_fields") or {})] + [
            f"-{k}" for k in sorted(mp.get("missing_fields") or {})
        ]
        excluded = sum((ex.get("excluded") or {}).values())
        table.add_row(
            scope,
            str(ex.get("records", "-")) + (f" ({excluded} excluded)" if excluded else ""),
            str(ex.get("new", "-")),
            str(ex.get("changed", "-")),
            str(mp.get("mapped", "-")),
            _warn(mp.get("rejected", 0)),
            ", ".join(sorted(drift))[:40] or "-",
        )
    check = stages.get("build_360", {}).get("all", {}).get("receivable") or {}
    if check.get("checked"):
        table.add_row(
            "open balance vs ERP receivable",
            str(check["checked"]),
            "",
            "",
            f"{check['matching']} match",
            _warn(check["differing"]),
            f"difference {check['difference']} {check['base_currency']}",
        )
    for target, body in stages.get("push", {}).items():
        if body.get("held"):
            table.add_row(f"push → {target}", "", "", "", "[bold red]held[/]", "", "")
            continue
        table.add_row(
            f"push → {target}",
            str(body.get("planned", 0)),
            "",
            "",
            f"{body.get('accepted', 0)} accepted",
            _warn(body.get("rejected", 0)),
            f"{body.get('unchanged', 0)} unchanged",
        )
    recon = stages.get("reconcile", {}).get("all", {})
    mismatches = recon.get("mismatches") or []
    if mismatches:
        table.caption = "[bold red]reconciliation mismatches:[/] " + "; ".join(mismatches[:5])
        table.caption_justify = "left"
    elif recon:
        table.caption = "reconciled: pulled = canonical + rejected, every customer pushed"
        table.caption_justify = "left"
    return table


def _warn(n: Any) -> str:
    return f"[bold red]{n}[/]" if isinstance(n, int) and n > 0 else str(n)


def money(value: Any, currency: str = "") -> str:
    """An amount with two decimals and thousands separators, then its currency."""
    return f"{Decimal(str(value)):,.2f} {currency}".strip()


def customers_table(rows: list[dict[str, Any]], title: str = "Customer 360") -> Table:
    """Stored 360 rows as one table: id, name, sources, orders, revenue, balance, tier, stage."""
    table = Table(title=title, title_justify="left")
    for col in (
        "concord id",
        "name",
        "sources",
        "orders",
        "revenue",
        "open balance",
        "tier",
        "stage",
        "last order",
    ):
        table.add_column(
            col, justify="right" if col in ("orders", "revenue", "open balance") else "left"
        )
    for d in rows:
        cur = d.get("base_currency", "")
        table.add_row(
            d["concord_id"],
            str(d["name"]["value"]),
            "\n".join(d["source_ids"]),
            str(d["orders_count"]),
            money(d["lifetime_revenue"], cur),
            money(d["open_balance"], cur),
            d["value_tier"],
            d["lifecycle_stage"],
            (d.get("last_order_at") or "-")[:10],
        )
    return table


MONEY_METRICS = frozenset(
    {
        "lifetime_revenue",
        "revenue_12m",
        "average_order_value",
        "invoiced_total",
        "paid_total",
        "open_balance",
        "overdue_balance",
        "unallocated_paid",
        "erp_receivable",
        "erp_receivable_difference",
    }
)
METRICS = (
    "orders_count",
    "lifetime_revenue",
    "revenue_12m",
    "average_order_value",
    "first_order_at",
    "last_order_at",
    "days_since_last_order",
    "open_orders",
    "open_quotes",
    "shipments_in_transit",
    "shipments_late_90d",
    "invoiced_total",
    "paid_total",
    "open_balance",
    "open_balance_basis",
    "overdue_balance",
    "average_days_to_pay",
    "unallocated_paid",
    "erp_receivable",
    "erp_receivable_difference",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "value_tier",
    "lifecycle_stage",
    "p_alive",
    "churn_risk",
)


def render_customer(console: Console, view: CustomerView) -> None:
    """Golden record (winning record and rule per value), numbers, links, then the 360 figures.

    The figures come with what finance needs to trust them: the business date they are as of,
    why invoiced is not paid + open when it is not, which exchange rates converted what, and
    how the churn figure was made.
    """
    d = view.data
    cur = d.get("base_currency", "")
    if view.asked_for:
        console.print(f"[yellow]{view.asked_for} was merged into {view.concord_id}[/]")
    as_of = f", as of {d['as_of']} ({d.get('timezone', 'UTC')})" if d.get("as_of") else ""
    console.print(
        f"[bold]{d['name']['value']}[/]  {view.concord_id}  tier {d['value_tier']}, "
        f"{d['lifecycle_stage']}{as_of}"
    )
    golden = Table("field", "value", "from record", "rule", title="Golden record")
    golden.title_justify = "left"
    for fname in ("name", "email", "phone", "address", "tax_id"):
        sv = d.get(fname)
        if sv:
            value = sv["value"]
            if isinstance(value, dict):
                value = ", ".join(str(v) for v in value.values() if v)
            golden.add_row(fname, str(value), sv["source"], sv.get("rule") or "-")
    for fname, many in (("email", d.get("emails") or []), ("phone", d.get("phones") or [])):
        others = [v for v in many if v != (d.get(fname) or {}).get("value")]
        if others:
            golden.add_row(f"other {fname}s", ", ".join(others), "(all records)", "union")
    console.print(golden)
    numbers = d.get("customer_numbers") or []
    if numbers:
        table = Table("source", "customer number", "record", title="ERP customer numbers")
        table.title_justify = "left"
        for n in numbers:
            table.add_row(n["source"], n["number"], n["record"])
        console.print(table)
    links = Table(
        "source record", "linked by", "score", "matched to", title="Sources", title_justify="left"
    )
    for link in view.links:
        links.add_row(
            record_key(link["source"], link["source_id"]),
            link["rule"],
            f"{link['score']:.2f}",
            link["matched_to"] or "-",
        )
    console.print(links)
    metrics = Table("metric", "value", title="360 metrics", title_justify="left")
    for key in METRICS:
        value = d.get(key)
        if key in MONEY_METRICS and value is not None:
            value = money(value, cur)
        metrics.add_row(key, "-" if value is None else str(value))
    console.print(metrics)
    _render_balance(console, d, cur)
    _render_fx(console, d)
    _render_churn(console, d)


def _render_balance(console: Console, d: Mapping[str, Any], cur: str) -> None:
    gaps = d.get("balance_gaps") or []
    line = (
        f"invoiced {money(d.get('invoiced_total', 0), cur)} = paid "
        f"{money(d.get('paid_total', 0), cur)} + open {money(d.get('open_balance', 0), cur)}"
    )
    if not gaps:
        console.print(f"balance: {line}")
        return
    table = Table("why invoiced != paid + open", "amount", title=f"balance: not {line}")
    table.title_justify = "left"
    for gap in gaps:
        table.add_row(gap["reason"], money(gap["amount"], cur))
    console.print(table)


def _render_fx(console: Console, d: Mapping[str, Any]) -> None:
    uses = d.get("fx") or []
    missing = d.get("unconverted") or {}
    if not uses and not missing:
        return
    table = Table("currency", "rates from", "rate applied", "documents", title="Exchange rates")
    table.title_justify = "left"
    for use in uses:
        table.add_row(
            use["currency"], use["source"], "\n".join(use["rates"]), str(use["documents"])
        )
    for currency, n in sorted(missing.items()):
        table.add_row(currency, "[red]no rate[/]", "left out of the figures", str(n))
    console.print(table)


def _render_churn(console: Console, d: Mapping[str, Any]) -> None:
    churn = d.get("churn")
    if not churn:
        return
    params = ", ".join(f"{k}={v:.4g}" for k, v in churn.get("params", {}).items())
    console.print(
        f"churn risk {d.get('churn_risk')} by {churn['model']}"
        + (f" ({params})" if params else "")
        + f" from x={churn['x']} repeat purchases, t_x={churn['t_x']:.2f} and "
        f"T={churn['T']:.2f} periods of {churn['period_days']} days"
        + (f"; {churn['reason']}" if churn.get("reason") else "")
    )


def render_explanation(console: Console, ex: Explanation) -> None:
    """Print an explanation: verdict, both records and ids, rule checks, the joining path."""
    colour = "green" if ex.same else "yellow"
    console.print(f"[bold {colour}]{ex.verdict}[/]")
    console.print(f"  {ex.a} -> record {ex.a_record}, concord id {ex.a_id or '-'}")
    console.print(f"  {ex.b} -> record {ex.b_record}, concord id {ex.b_id or '-'}")
    if ex.override:
        console.print(f"  override: {ex.override}")
    if ex.checks:
        table = Table("rule", "type", "fires", "score", "evidence", title="Rules on this pair")
        for c in ex.checks:
            table.add_row(
                c.rule,
                c.type,
                "yes" if c.fires else "no",
                "-" if c.score is None else f"{c.score:.2f}",
                c.detail,
            )
        console.print(table)
    if ex.path:
        table = Table("record", "linked to", "by rule", "score", title="Links joining them")
        for step in ex.path:
            table.add_row(step.record, step.matched_to, step.rule, f"{step.score:.2f}")
        console.print(table)


MAX_VALUE = 60


def _show(value: Any) -> str:
    if value is None:
        return "∅"
    text = str(value)
    if text == "":
        return '""'
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def summary_line(plan: PushPlan) -> Text:
    """One line: creates, updates, merges, unchanged, retries, refusals and the API calls."""
    s = plan.counts()
    line = Text.assemble(
        (f"push → {plan.target}", "bold"),
        f" ({plan.target_type}): ",
        (f"{s.creates} create{'s' if s.creates != 1 else ''}", "green"),
        ", ",
        (f"{s.updates} update{'s' if s.updates != 1 else ''}", "yellow"),
        ", ",
        (f"{s.merges} merge{'s' if s.merges != 1 else ''}", "magenta"),
        f", {s.unchanged} unchanged",
    )
    if s.retries:
        line.append(f", {s.retries} retried after a reject")
    if s.mapping_failed:
        line.append(f", {s.mapping_failed} refused by the mapping", "red")
    line.append(
        f"; {plan.api_calls} API call{'s' if plan.api_calls != 1 else ''} "
        f"({plan.upsert_calls} upsert batch{'es' if plan.upsert_calls != 1 else ''} of up to "
        f"{plan.batch_size}, {plan.merge_calls} for merges)"
    )
    return line


def render_plan(plan: PushPlan, *, limit: int = 50) -> RenderableType:
    """The whole plan (``concord push --dry-run``) as one renderable, ``limit`` rows a section."""
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
            table.add_row(m.absorbed, m.survivor, plan.merge_effect(m), m.absorbed_remote_id or "-")
        parts.append(table)
        parts.extend(_more(len(plan.merges), limit))
    if plan.mapping_failed:
        table = Table(
            "concord id", "field", "reason", title="Refused by the mapping", title_justify="left"
        )
        for r in plan.mapping_failed[:limit]:
            table.add_row(str(r.source_id), r.field or "-", r.reason)
        parts.append(table)
        parts.extend(_more(len(plan.mapping_failed), limit))
    return Group(*parts)


def _more(total: int, limit: int) -> list[RenderableType]:
    return [Text(f"… and {total - limit} more", style="dim")] if total > limit else []


def runs_table(rows: list[dict[str, Any]]) -> Table:
    """Recent runs: id, status, trigger, start and finish."""
    table = Table("run", "status", "trigger", "started", "finished")
    for r in rows:
        table.add_row(
            r["run_id"],
            r["status"],
            r["trigger"],
            f"{r['started_at']:%F %T}",
            f"{r['finished_at']:%F %T}" if r["finished_at"] else "-",
        )
    return table


def rejects_table(rows: list[dict[str, Any]], *, payload: bool = False) -> Table:
    """Rejected records: stage, where from, id, field, reason and the mapping file:line."""
    table = Table(
        "stage",
        "source/entity",
        "id",
        "field",
        "reason",
        "where",
        title=f"{len(rows)} rejects",
        title_justify="left",
    )
    for r in rows:
        table.add_row(
            r["stage"],
            f"{r['source']}/{r['entity']}",
            r["source_id"] or "-",
            r["field"] or "-",
            r["reason"],
            r.get("location") or "-",
        )
        if payload and r["payload"]:
            table.add_row("", "", "", "payload", r["payload"].decode("utf-8", "replace"), "")
    return table


def preview_table(title: str, rows: list[tuple[Any, Any, set[str]]]) -> Table:
    """``concord mappings preview``: each input beside its output (or reject), then its drift.

    Each row is (input record, mapped output or a ``RecordRejected``, unmapped source paths).
    """
    table = Table("input", "output", title=title, title_justify="left", show_lines=True)
    for record, out, drift in rows:
        if isinstance(out, RecordRejected):
            shown = f"[red]rejected[/] {out.field}: {out.reason}"
        else:
            shown = orjson.dumps(out, default=str, option=orjson.OPT_INDENT_2).decode()
        table.add_row(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode(), shown)
        if drift:
            table.add_row("[yellow]not mapped:[/] " + ", ".join(sorted(drift)), "")
    return table
