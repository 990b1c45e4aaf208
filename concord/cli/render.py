"""Everything the CLI shows, in one place: the consoles, the progress display and each rendering.

Run summaries (also written to Airflow task logs), customer-360 tables, a golden customer whole,
why two records are or are not one customer, push plans, runs and rejects. Commands build data
with library calls and hand it here; nothing here reads the store.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from concord.customer360.lookup import CustomerView
from concord.errors import RecordRejected
from concord.identity.explain import Explanation
from concord.identity.review import Review
from concord.model import record_key
from concord.push.diff import PlannedUpsert
from concord.push.plan import PushPlan

console = Console(highlight=False)
if not console.is_terminal:
    console.width = max(console.width, 140)
err_console = Console(stderr=True, highlight=False)

PROGRESS_EVERY = float(os.environ.get("CONCORD_PROGRESS_SECONDS", "15"))
"""Off a terminal, seconds between progress lines of a long stage (logs show it is alive)."""


def short_id(concord_id: str | None) -> str:
    """A concord id as tables show it: ``cc_`` and its first 8 hex digits.

    Every command that takes a concord id also takes this short form.
    """
    if not concord_id:
        return "-"
    return concord_id[:11] if concord_id.startswith("cc_") else concord_id


def print_json(data: Any) -> None:
    """``--json`` output: indented JSON on stdout, nothing else (pipe it into jq)."""
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
    sys.stdout.write(text.decode() + "\n")
    sys.stdout.flush()


class LineProgress:
    """Progress for logs (no terminal): a line when a stage starts, and while it runs long.

    A ticker thread prints ``... extract sandbox_erp/orders: 1,200 records, 30 s`` every
    ``PROGRESS_EVERY`` seconds, so a stage waiting on a slow or hung ERP shows it is alive.
    Entities pulled side by side each keep their count; a tick names those that received
    pages since the last one (or, when none did, the stage started last).
    """

    def __init__(self, out: Console, every: float = PROGRESS_EVERY) -> None:
        self.out, self.every = out, every
        self.stage = ""
        self.records: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.active: list[str] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._tick, name="concord-progress", daemon=True)

    def __enter__(self) -> LineProgress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=1)

    def _tick(self) -> None:
        while not self.done.wait(self.every):
            with self.lock:
                if not self.stage:
                    continue
                now = time.monotonic()
                lines = [
                    f"... {label}: {self.records[label]:,} records, "
                    f"{now - self.started[label]:.0f} s"
                    for label in (self.active or [self.stage])
                ]
                self.active = []
            for line in lines:
                self.out.print(line, highlight=False, soft_wrap=True)

    def on_event(self, name: str, data: dict[str, Any]) -> None:
        """Follow the pipeline's events (stage starts, records done, failures)."""
        with self.lock:
            if name == "stage":
                self.stage = f"{data['stage']} {data['scope']}"
                if data["stage"] != "extract":
                    self.records, self.started, self.active = {}, {}, []
                self.records[self.stage], self.started[self.stage] = 0, time.monotonic()
                self.out.print(f"{self.stage} ...", highlight=False, soft_wrap=True)
            elif name in ("page", "mapped", "pushed"):
                own = f"extract {data.get('source')}/{data.get('entity')}"
                label = own if name == "page" and own in self.records else self.stage
                if label in self.records:
                    self.records[label] += int(data.get("records", 0))
                    if label not in self.active:
                        self.active.append(label)
            elif name == "failed":
                self.out.print(
                    f"[red]{data['stage']} {data['scope']} failed:[/] {data['error']}",
                    soft_wrap=True,
                )


@contextmanager
def progress_events(out: Console | None = None) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """Progress fed by pipeline events: a live display on a terminal, lines in a log."""
    out = out or console
    if not out.is_terminal:
        with LineProgress(out) as lines:
            yield lines.on_event
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>8,.0f} records"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_event(name: str, data: dict[str, Any]) -> None:
            if name == "stage":
                key = f"{data['stage']} {data['scope']}"
                tasks[key] = progress.add_task(key, total=None)
                tasks["current"] = tasks[key]
            elif name in ("page", "mapped", "pushed") and "current" in tasks:
                # concurrent extracts: a page advances its own entity's bar, not the newest one
                own = tasks.get(f"extract {data.get('source')}/{data.get('entity')}")
                progress.advance(
                    own if name == "page" and own is not None else tasks["current"],
                    data.get("records", 0),
                )
            elif name == "failed":
                progress.console.print(
                    f"[red]{data['stage']} {data['scope']} failed:[/] {data['error']}"
                )

        yield on_event


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _entity_table(stages: Mapping[str, Any]) -> Table | None:
    """Pulled and mapped records per source entity, grouped under each source."""
    extract, mapped = stages.get("extract", {}), stages.get("map", {})
    scopes = list(dict.fromkeys([*extract, *mapped]))
    if not scopes:
        return None
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("source / entity", overflow="fold", min_width=12, ratio=3)
    for col in ("pulled", "new", "changed", "mapped", "rejected"):
        table.add_column(col, justify="right", no_wrap=True)
    current = None
    for scope in sorted(scopes, key=lambda sc: (sc.split("/", 1)[0], scopes.index(sc))):
        source, _, entity = scope.partition("/")
        if source != current:
            table.add_row(Text(source, style="bold"), "", "", "", "", "")
            current = source
        ex, mp = extract.get(scope, {}), mapped.get(scope, {})
        failed = ex.get("status") == "failed" or mp.get("status") == "failed"
        table.add_row(
            Text(f"  {entity}", style="red" if failed else ""),
            "failed" if ex.get("status") == "failed" else _count(ex.get("records")),
            _count(ex.get("new")),
            _count(ex.get("changed")),
            _count(mp.get("mapped")),
            _warn(mp.get("rejected", 0)),
        )
    return table


def _push_table(stages: Mapping[str, Any]) -> Table | None:
    """One row per target: what was sent and what came of it (or the plan of a dry run)."""
    pushes = stages.get("push", {})
    if not pushes:
        return None
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("push to", overflow="fold", min_width=10, ratio=3)
    for col in ("sent", "created", "updated", "unchanged", "rejected", "merged", "calls"):
        table.add_column(col, justify="right", no_wrap=True)
    for target, body in pushes.items():
        plan = body.get("plan")
        if body.get("held") and not body.get("dry_run"):
            table.add_row(Text(target, style="red"), "held", "", "", "", "", "", "")
        elif body.get("status") == "failed" and "planned" not in body:
            table.add_row(Text(target, style="red"), "failed", "", "", "", "", "", "")
        elif plan:
            table.add_row(
                f"{target} (plan)",
                _count(plan["creates"] + plan["updates"]),
                _count(plan["creates"]),
                _count(plan["updates"]),
                _count(plan["unchanged"]),
                _warn(plan["mapping_failed"]),
                _count(plan["merges"]),
                _count(plan["api_calls"]),
            )
        else:
            table.add_row(
                Text(target, style="red" if body.get("status") == "failed" else ""),
                _count(body.get("planned", 0)),
                _count(body.get("created", 0)),
                _count(body.get("updated", 0)),
                _count(body.get("unchanged", 0)),
                _warn(body.get("rejected", 0)),
                _count(body.get("merged", 0)),
                _count(body.get("calls", 0)),
            )
    return table


def _drift(stages: Mapping[str, Any]) -> Table | None:
    """Schema drift listed in full below the table: new (+) and vanished (-) source paths."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for scope, body in stages.get("map", {}).items():
        added = [f"+{k} ({n})" for k, n in sorted((body.get("unmapped_fields") or {}).items())]
        gone = [f"-{k} ({n})" for k, n in sorted((body.get("missing_fields") or {}).items())]
        if added or gone:
            grid.add_row(f"  {scope}:", ", ".join([*added, *gone]))
    return grid if grid.row_count else None


def run_notes(report: Mapping[str, Any]) -> list[RenderableType]:
    """What the tables cannot say: replays, quarantine, drift, gates, failures, reconcile."""
    stages = report.get("stages", {})
    notes: list[RenderableType] = []
    for scope, body in stages.get("map", {}).items():
        if body.get("replayed") and body.get("replay") == "all":
            notes.append(Text(f"{scope}: {body['replayed']:,} staged records mapped again"))
        elif body.get("replayed"):
            notes.append(
                Text(
                    f"{scope}: the mapping changed since {body['replayed']:,} staged records were "
                    "mapped; they were mapped again",
                    style="yellow",
                )
            )
        if body.get("quarantined"):
            notes.append(
                Text(
                    f"{scope}: {body['quarantined']:,} records turned bad; their last good rows "
                    "are quarantined, out of the 360 and the push (`concord rejects`)",
                    style="yellow",
                )
            )
    for scope, body in stages.get("extract", {}).items():
        if body.get("source_count") is not None:
            agree = body.get("count_check") == "agree"
            extra = []
            if body.get("left_window"):
                extra.append(f"{body['left_window']:,} changed during the pull, next window")
            if body.get("repulled"):
                extra.append("window pulled again")
            notes.append(
                Text(
                    f"{scope}: source {body['source_count']:,}, staged {body['staged_count']:,} "
                    f"({body.get('count_how') or 'count'}" + "".join(f"; {e}" for e in extra) + ")",
                    style="" if agree else "bold red",
                )
            )
        excluded = body.get("excluded") or {}
        if excluded:
            reasons = ", ".join(f"{why} ({n:,})" for why, n in sorted(excluded.items()))
            notes.append(Text(f"{scope}: {sum(excluded.values()):,} records excluded: {reasons}"))
    built = stages.get("build_360", {}).get("all", {})
    if built.get("customers"):
        changed, boundary = built.get("recomputed_changed", 0), built.get("recomputed_boundary", 0)
        how = (
            f"rebuilt in full ({built['full_reason']})"
            if built.get("full_reason")
            else f"{built.get('recomputed', 0):,} recomputed ({changed:,} changed, "
            f"{boundary:,} past a date boundary)"
        )
        notes.append(
            Text(
                f"360: {built['customers']:,} customers, {how}, "
                f"{built.get('written', 0):,} rows written"
            )
        )
    check = built.get("receivable") or {}
    if check.get("checked"):
        notes.append(
            Text(
                f"open balance vs ERP receivable: {check['checked']:,} checked, "
                f"{check['matching']:,} match, {check['differing']:,} differ "
                f"(difference {check['difference']} {check['base_currency']})",
                style="red" if check.get("differing") else "",
            )
        )
    for target, body in stages.get("push", {}).items():
        if body.get("held"):
            would = "would be held" if body.get("dry_run") else "held"
            notes.append(Text(f"push to {target} {would}: {body['held']}", style="bold red"))
        if body.get("resync") == "verify":
            notes.append(
                Text(
                    f"resync {target}: read back {body.get('checked', 0):,} customers; the CRM was "
                    f"missing {body.get('missing', 0):,} and held {body.get('different', 0):,} "
                    f"differently (sent), {body.get('unchanged', 0):,} were equal"
                )
            )
        elif body.get("resync") == "full":
            notes.append(Text(f"resync {target}: every customer re-sent (--full)"))
    drift = _drift(stages)
    if drift is not None:
        notes += [Text("schema drift (source paths new + or gone -):"), drift]
    for failure in report.get("failures") or []:
        notes.append(Text(f"failed: {failure}", style="bold red"))
    if report.get("error") and not report.get("failures"):
        notes.append(Text(f"error: {report['error']}", style="bold red"))
    notes.extend(_reconcile_note(stages))
    return notes


def _reconcile_note(stages: Mapping[str, Any]) -> list[Text]:
    recon = stages.get("reconcile", {}).get("all", {})
    if not recon:
        return []
    mismatches = recon.get("mismatches") or []
    if mismatches:
        return [Text("reconciliation mismatches:\n  " + "\n  ".join(mismatches), style="red")]
    targets = [t["target"] for t in recon.get("targets") or []]
    if recon.get("dry_run"):
        pushed = "nothing pushed (dry run)"
    elif targets:
        pushed = f"every customer pushed to {', '.join(targets)}"
    else:
        pushed = "no target in this run"
    counted = [e for e in recon.get("entities") or [] if e.get("source_count") is not None]
    if counted:
        source = sum(int(e["source_count"]) for e in counted)
        where = f"source = staged ({source:,} records in {len(counted)} counted windows); "
    else:
        where = ""
    return [
        Text(
            f"reconciled: {where}staged = canonical + rejected + pending; {pushed}",
            style="green",
        )
    ]


def run_summary(
    report: Mapping[str, Any], *, status: str | None = None, title: str | None = None
) -> RenderableType:
    """The run as a reader wants it at any width: per source entity, per target, then notes."""
    stages = report.get("stages", {})
    heading = Text(title or f"Run {report.get('run_id', '')}", style="bold")
    if status:
        colour = {"succeeded": "green", "failed": "red", "partial": "yellow"}.get(status, "")
        heading.append(f"  {status}", style=f"bold {colour}".strip())
    parts: list[RenderableType] = [heading]
    for table in (_entity_table(stages), _push_table(stages)):
        if table is not None:
            parts.append(table)
    parts.extend(run_notes(report))
    return Group(*parts)


def _warn(n: Any) -> str:
    return f"[bold red]{n:,}[/]" if isinstance(n, int) and n > 0 else _count(n)


def money(value: Any, currency: str = "") -> str:
    """An amount with two decimals and thousands separators, then its currency."""
    return f"{Decimal(str(value)):,.2f} {currency}".strip()


NARROW = 100
"""Below this many columns tables fold secondary columns into the main one."""


class CustomersTable:
    """Stored 360 rows as one table that fits the terminal it is printed on.

    Wide: id, name, sources, orders, revenue, balance, tier, stage. Narrow (under ``NARROW``
    columns): each customer's source records go under its name and the lifecycle stage is left
    out, so nothing is cut. Ids are shortened (``short_id``).
    """

    def __init__(self, rows: list[dict[str, Any]], title: str) -> None:
        self.rows, self.title = rows, title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        narrow = options.max_width < NARROW
        currency = next((d.get("base_currency", "") for d in self.rows), "")
        table = Table(title=self.title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("concord id", no_wrap=True)
        table.add_column("customer" if narrow else "name", overflow="fold", ratio=3, min_width=12)
        if not narrow:
            table.add_column("sources", overflow="fold", ratio=3, min_width=12)
        for col in ("orders", f"revenue {currency}".strip(), f"balance {currency}".strip()):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("tier", no_wrap=True)
        if not narrow:
            table.add_column("stage", overflow="fold", min_width=5)
        for d in self.rows:
            name = Text(str(d["name"]["value"]))
            sources = "\n".join(d["source_ids"])
            if narrow:
                name.append("\n" + sources, style="dim")
            cells: list[RenderableType] = [short_id(d["concord_id"]), name]
            if not narrow:
                cells.append(sources)
            cells += [
                str(d["orders_count"]),
                money(d["lifetime_revenue"]),
                money(d["open_balance"]),
                d["value_tier"],
            ]
            if not narrow:
                cells.append(d["lifecycle_stage"])
            table.add_row(*cells)
        yield table


def customers_table(rows: list[dict[str, Any]], title: str = "Customer 360") -> CustomersTable:
    """Stored 360 rows as one table (``CustomersTable``): wraps, never cuts."""
    return CustomersTable(rows, title)


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


def render_reviews(console: Console, reviews: list[Review]) -> None:
    """The held clusters: id, reason, parts and the links that would join them."""
    if not reviews:
        console.print("no cluster waits for review")
        return
    for r in reviews:
        console.print(f"[bold]review {r.id}[/] ({r.status}, run {r.run_id}): {r.reason}")
        for n, part in enumerate(r.parts, 1):
            shown = ", ".join(part[:6]) + (f", ... ({len(part)})" if len(part) > 6 else "")
            console.print(f"  part {n}: {shown}")
        table = Table("record", "linked to", "rule", "score", "weight", title="Held links")
        for b in r.bridges:
            weight = b.get("weight")
            table.add_row(
                b["a"],
                b["b"],
                b["rule"],
                f"{b['score']:.4f}",
                "-" if weight is None else f"{weight:+.1f}",
            )
        console.print(table)


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
    if ex.identifiers:
        for key, labels in ex.identifiers.items():
            console.print(f"  identifiers of {key}: {', '.join(labels) or 'none'}")
    if ex.weights is not None:
        w = ex.weights
        table = Table("field", "level", "weight", "tf adj.", title=f"Match weights ({w.kind})")
        table.add_row("prior", "two random records", f"{w.prior_weight:+.2f}", "")
        for f in w.fields:
            table.add_row(
                f.field,
                f.level,
                f"{f.weight:+.2f}",
                f"{f.tf_adjustment:+.2f}" if f.tf_adjustment else "",
            )
        table.add_row("total", "", f"{w.match_weight:+.2f}", f"p = {w.probability:.4f}")
        console.print(table)
    for why in ex.constraints:
        console.print(f"  [red]constraint:[/] {why}")
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


def _who(p: PlannedUpsert) -> Text:
    """A planned customer as a reader recognises it: name, then id and ERP numbers."""
    label = Text(p.name or short_id(p.key), style="bold")
    label.append(f"\n{short_id(p.key)}" + (" (retry)" if p.retry else ""), style="dim")
    for sid in p.source_ids:
        label.append(f"\n{sid}", style="dim")
    return label


def render_plan(plan: PushPlan, *, limit: int = 50) -> RenderableType:
    """The whole plan (``concord push --dry-run``) as one renderable, ``limit`` rows a section."""
    parts: list[RenderableType] = [summary_line(plan)]
    if plan.creates:
        table = Table(title="Creates", title_justify="left", show_lines=True)
        table.add_column("customer", overflow="fold", ratio=2, min_width=14)
        table.add_column("object", no_wrap=True)
        table.add_column("properties", overflow="fold", ratio=5)
        for p in plan.creates[:limit]:
            props = ", ".join(f"{k}={_show(v)}" for k, v in sorted(p.stored.items()))
            table.add_row(_who(p), p.object_type, props)
        parts.append(table)
        parts.extend(_more(len(plan.creates), limit))
    if plan.updates:
        table = Table(title="Updates", title_justify="left", show_lines=True)
        table.add_column("customer", overflow="fold", ratio=2, min_width=14)
        for col in ("field", "old", "new"):
            table.add_column(col, overflow="fold", ratio=2)
        for p in plan.updates[:limit]:
            changes = p.changes()
            if not changes:
                table.add_row(_who(p), "(retry of a rejected send)", "", "")
                continue
            table.add_row(
                _who(p),
                "\n".join(c.field for c in changes),
                "\n".join(_show(c.old) for c in changes),
                "\n".join(_show(c.new) for c in changes),
            )
        parts.append(table)
        parts.extend(_more(len(plan.updates), limit))
    if plan.merges:
        table = Table(title="Merges", title_justify="left")
        for col in ("absorbed", "survivor", "becomes", "target record"):
            table.add_column(col, overflow="fold")
        for m in plan.merges[:limit]:
            table.add_row(
                short_id(m.absorbed),
                short_id(m.survivor),
                plan.merge_effect(m),
                m.absorbed_remote_id or "-",
            )
        parts.append(table)
        parts.extend(_more(len(plan.merges), limit))
    if plan.mapping_failed:
        table = Table(title="Refused by the mapping", title_justify="left")
        table.add_column("concord id", no_wrap=True)
        table.add_column("field", overflow="fold")
        table.add_column("reason", overflow="fold", ratio=3)
        for r in plan.mapping_failed[:limit]:
            table.add_row(short_id(r.source_id), r.field or "-", r.reason)
        parts.append(table)
        parts.extend(_more(len(plan.mapping_failed), limit))
    return Group(*parts)


def _more(total: int, limit: int) -> list[RenderableType]:
    return [Text(f"… and {total - limit} more", style="dim")] if total > limit else []


def runs_table(rows: list[dict[str, Any]]) -> Table:
    """Recent runs: id, status, trigger, start and finish."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("run", overflow="fold", ratio=2, min_width=14)
    for col in ("status", "trigger", "started", "finished"):
        table.add_column(col, no_wrap=col != "trigger", overflow="fold")
    colours = {"succeeded": "green", "failed": "red", "partial": "yellow"}
    for r in rows:
        table.add_row(
            r["run_id"],
            Text(r["status"], style=colours.get(r["status"], "")),
            r["trigger"],
            f"{r['started_at']:%F %T}",
            f"{r['finished_at']:%F %T}" if r["finished_at"] else "-",
        )
    return table


def run_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run as ``concord runs --json`` gives it (with its report)."""
    keep = ("run_id", "status", "trigger", "started_at", "finished_at", "window_start")
    return {**{k: row.get(k) for k in (*keep, "window_end")}, "report": row.get("report") or {}}


def payload_text(payload: bytes, marked: set[str]) -> Text:
    """A stored payload in full, indented, each line of a ``marked`` source path flagged.

    A marked path the payload does not have is named at the end (a missing key is often the
    reason). A payload that is not JSON is shown as text.
    """
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Text(payload.decode("utf-8", "replace"))
    out = Text()
    seen: set[str] = set()
    _payload_lines(value, "", 0, marked, seen, out, last=True, key=None)
    for path in sorted(marked - seen):
        out.append(f"▶ {path}: not in the payload\n", style="bold red")
    out.rstrip()
    return out


def _payload_lines(
    value: Any,
    path: str,
    depth: int,
    marked: set[str],
    seen: set[str],
    out: Text,
    *,
    last: bool,
    key: str | None,
) -> None:
    hit = bool(path) and path in marked
    if hit:
        seen.add(path)
    lead = (
        ("▶ " if hit else "  ") + "  " * depth + (f"{orjson.dumps(key).decode()}: " if key else "")
    )
    comma = "" if last else ","
    style = "bold red" if hit else ""
    if isinstance(value, dict) and value:
        out.append(lead + "{\n", style=style)
        items = list(value.items())
        for i, (k, v) in enumerate(items):
            child = f"{path}.{k}" if path else str(k)
            _payload_lines(
                v, child, depth + 1, marked, seen, out, last=i == len(items) - 1, key=str(k)
            )
        out.append("  " + "  " * depth + "}" + comma + "\n")
    elif isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        out.append(lead + "[\n", style=style)
        for i, v in enumerate(value):
            _payload_lines(
                v, path, depth + 1, marked, seen, out, last=i == len(value) - 1, key=None
            )
        out.append("  " + "  " * depth + "]" + comma + "\n")
    else:
        out.append(lead + orjson.dumps(value).decode() + comma + "\n", style=style)


def rejects_view(
    rows: list[dict[str, Any]],
    *,
    payload: bool = False,
    paths: Mapping[int, set[str]] | None = None,
) -> RenderableType:
    """Rejected records, one block each: where, why, the mapping line, and the payload.

    ``paths`` (reject id -> source paths) marks the part of each payload that failed.
    """
    parts: list[RenderableType] = [Text(f"{len(rows)} rejects", style="bold")]
    for r in rows:
        head = Text.assemble(
            (r["stage"], "bold"),
            "  ",
            f"{r['source']}/{r['entity']}",
            "  ",
            (r["source_id"] or "(no id)", "bold"),
            *((f"  field {r['field']}", "yellow"),) if r["field"] else (),
            *(("  resolved", "green"),) if r.get("resolved_run") else (),
        )
        lines: list[RenderableType] = [head, Text(f"    {r['reason']}")]
        if r.get("location"):
            lines.append(Text(f"    at {r['location']}", style="dim"))
        if payload and r.get("payload"):
            body = payload_text(bytes(r["payload"]), set((paths or {}).get(r["id"], set())))
            lines.append(Text("    payload:", style="dim"))
            lines.append(Padding(body, (0, 0, 0, 4), expand=False))
        parts.append(Group(*lines))
    return Group(*parts)


def reject_row(row: Mapping[str, Any], paths: set[str]) -> dict[str, Any]:
    """A reject as ``concord rejects --json`` gives it: payload as JSON when it is JSON."""
    out = {k: v for k, v in row.items() if k != "payload"}
    raw = row.get("payload")
    if raw is not None:
        try:
            out["payload"] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out["payload"] = bytes(raw).decode("utf-8", "replace")
    out["failing_paths"] = sorted(paths)
    return out


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
