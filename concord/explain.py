"""Why two customer records are, or are not, the same customer (``concord customers explain``).

Given two references (``source:id`` record keys or concord ids), ``explain`` reads the current
clusters and links from the store and re-evaluates every configured rule on the pair with the
same normalisation the resolve stage uses: which rules fire and with what evidence, whether a
manual override applies, and, when they share a concord id, the chain of links (rule and score
at each step) that joins them. ``render_explanation`` prints it through the rich console.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, select

from concord.config import PipelineConfig
from concord.errors import ConcordError
from concord.identity import (
    SEED_RULE,
    CustomerRecord,
    common_tokens,
    fuzzy_verdict,
    load_customer_records,
    load_overrides,
    name_key,
    overrides_path,
)
from concord.store import Store
from concord.store import tables as t


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One configured rule evaluated on the pair: does it fire, and on what evidence."""

    rule: str
    type: str
    fires: bool
    detail: str
    score: float | None = None


@dataclass(frozen=True, slots=True)
class PathStep:
    """One tree link on the way from one record to the other."""

    record: str
    matched_to: str
    rule: str
    score: float


@dataclass(slots=True)
class Explanation:
    a: str
    b: str
    a_record: str
    b_record: str
    a_id: str | None
    b_id: str | None
    same: bool
    checks: list[RuleCheck] = field(default_factory=list)
    path: list[PathStep] = field(default_factory=list)
    override: str | None = None
    verdict: str = ""


def _current_id(conn: Connection, gid: str) -> str | None:
    """Follow merged_into to the id that holds a concord id's records now."""
    g = t.golden
    seen: set[str] = set()
    while gid not in seen:
        seen.add(gid)
        row = conn.execute(select(g.c.status, g.c.merged_into).where(g.c.concord_id == gid)).first()
        if row is None:
            return None
        if row[0] != "merged" or not row[1]:
            return gid
        gid = row[1]
    return gid


def _record_for(conn: Connection, ref: str) -> tuple[str, str | None]:
    """A record key and its concord id for a reference (concord id -> its seed record)."""
    il = t.identity_links
    gid = _current_id(conn, ref)
    if gid is not None:
        keys = [
            f"{s}:{sid}"
            for s, sid, rule in conn.execute(
                select(il.c.source, il.c.source_id, il.c.rule)
                .where(il.c.concord_id == gid)
                .order_by(il.c.source, il.c.source_id)
            )
            if rule == SEED_RULE
        ]
        if keys:
            return keys[0], gid
    if ":" in ref:
        source, _, sid = ref.partition(":")
        found = conn.execute(
            select(il.c.concord_id).where(il.c.source == source, il.c.source_id == sid)
        ).scalar()
        exists = conn.execute(
            select(t.customers.c.source_id).where(
                t.customers.c.source == source, t.customers.c.source_id == sid
            )
        ).scalar()
        if exists is not None:
            return ref, found
    raise ConcordError(f"no customer record or concord id matches {ref!r}")


def _path(conn: Connection, a: str, b: str, gid: str) -> list[PathStep]:
    il = t.identity_links
    parent: dict[str, tuple[str, str, float]] = {}
    for s, sid, rule, score, matched in conn.execute(
        select(il.c.source, il.c.source_id, il.c.rule, il.c.score, il.c.matched_to).where(
            il.c.concord_id == gid
        )
    ):
        if matched:
            parent[f"{s}:{sid}"] = (matched, rule, float(score))

    def up(key: str) -> list[str]:
        chain = [key]
        while chain[-1] in parent and len(chain) <= len(parent) + 1:
            chain.append(parent[chain[-1]][0])
        return chain

    up_a, up_b = up(a), up(b)
    common = next((k for k in up_a if k in set(up_b)), None)
    if common is None:
        return []
    steps = []
    for chain in (up_a, up_b):
        for key in chain[: chain.index(common)]:
            matched, rule, score = parent[key]
            steps.append(PathStep(key, matched, rule, score))
    return steps


COMMON_SAMPLE = 200_000


def common_tokens_in_store(store: Store, limit: int = COMMON_SAMPLE) -> frozenset[str]:
    """Name words common in the customer base, as the resolve stage counts them.

    Counted over the first ``limit`` customers (all of them in most stores), so explaining one
    pair stays quick on a very large base.
    """
    c = t.customers
    with store.engine.connect() as conn:
        names = conn.execute(select(c.c.name).limit(limit)).scalars().all()
    return common_tokens(name_key(n) for n in names)


def rule_checks(
    ra: CustomerRecord,
    rb: CustomerRecord,
    config: PipelineConfig,
    common: frozenset[str] = frozenset(),
) -> list[RuleCheck]:
    """Every configured rule evaluated on two records, with the evidence for or against."""
    checks = []
    for rule in config.identity.rules:
        if rule.type == "crossref":
            refs_a = {rb.key, f"{rb.source}:customers:{rb.source_id}"} & set(ra.crossrefs)
            refs_b = {ra.key, f"{ra.source}:customers:{ra.source_id}"} & set(rb.crossrefs)
            fires = bool(refs_a or refs_b)
            detail = (
                f"{ra.key if refs_a else rb.key} names the other as a cross-reference"
                if fires
                else "neither record names the other"
            )
            checks.append(RuleCheck(rule.name, rule.type, fires, detail, 1.0 if fires else None))
        elif rule.type == "tax_id":
            fires = bool(ra.tax_id and ra.tax_id == rb.tax_id)
            detail = (
                f"same valid tax id {ra.tax_id}"
                if fires
                else f"tax ids {ra.tax_id or 'missing/invalid'} vs {rb.tax_id or 'missing/invalid'}"
            )
            checks.append(RuleCheck(rule.name, rule.type, fires, detail, 1.0 if fires else None))
        elif rule.type == "email":
            shared = sorted(set(ra.emails) & set(rb.emails))
            detail = (
                f"shared address {shared[0]}"
                if shared
                else "no shared address (free-mail domains are not compared)"
            )
            checks.append(
                RuleCheck(rule.name, rule.type, bool(shared), detail, 1.0 if shared else None)
            )
        else:
            linked, sim, _agree, why = fuzzy_verdict(ra, rb, rule, common)
            detail = f"'{ra.name_key}' vs '{rb.name_key}': {why}"
            checks.append(RuleCheck(rule.name, rule.type, linked, detail, round(sim / 100, 4)))
    return checks


def explain(store: Store, config: PipelineConfig, a: str, b: str) -> Explanation:
    """Why references ``a`` and ``b`` are or are not the same customer, from the store."""
    with store.engine.connect() as conn:
        ka, ida = _record_for(conn, a)
        kb, idb = _record_for(conn, b)
        same = ida is not None and ida == idb
        path = _path(conn, ka, kb, ida) if same and ida else []
    pair = [(k.partition(":")[0], k.partition(":")[2]) for k in (ka, kb)]
    records = {r.key: r for r in load_customer_records(store, config.identity, pair)}
    out = Explanation(a, b, ka, kb, ida, idb, same, path=path)
    if ka in records and kb in records and ka != kb:
        out.checks = rule_checks(records[ka], records[kb], config, common_tokens_in_store(store))
    base = config.path.parent if config.path else None
    overrides = load_overrides(overrides_path(config.identity, base))
    never, forced = overrides.never(ka, kb), overrides.forced(ka, kb)
    if never:
        out.override = f"never_merge at {never.where}" + (
            f": {never.reason}" if never.reason else ""
        )
    elif forced:
        out.override = f"force_merge at {forced.where}" + (
            f": {forced.reason}" if forced.reason else ""
        )
    fired = [c.rule for c in out.checks if c.fires]
    if ka == kb:
        out.verdict = f"both references are the record {ka}"
    elif same:
        rules = sorted({s.rule for s in path})
        out.verdict = (
            f"same customer {ida}: linked through {len(path)} link(s) by {', '.join(rules)}"
        )
    elif never:
        out.verdict = "different customers: a never-merge override keeps them apart" + (
            f" although {', '.join(fired)} would link them" if fired else ""
        )
    elif fired:
        out.verdict = (
            f"{', '.join(fired)} links them, but the store has them apart: "
            "the resolve stage has not run since the data changed"
        )
    else:
        out.verdict = "different customers: no rule links them"
    return out


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
