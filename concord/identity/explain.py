"""Why two customer records are, or are not, the same customer (``concord customers explain``).

Given two references (``source:id`` record keys or concord ids), ``explain`` reads the current
clusters and links from the store and evaluates every configured rule on the pair with the
resolve stage's own code: the same normalisation, the same rule keys (``rule_verdict``) and the
same count of common name words over the whole customer base. It says which rules fire and on
what evidence, whether a manual override applies, and, when they share a concord id, the chain
of links (rule and score at each step) that joins them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from concord.config import PipelineConfig
from concord.errors import ConcordError
from concord.identity.constraints import ConstrainedUnionFind
from concord.identity.ids import surviving_id
from concord.identity.linking import SEED_RULE, common_tokens, record_evidence, rule_verdict
from concord.identity.models import latest_model
from concord.identity.normalise import CustomerRecord, load_customer_records, name_keys_in_store
from concord.identity.scoring import Model, PairScore, explain_pair, kind_of, term_frequencies
from concord.model import record_key, split_record_key
from concord.overrides import load_overrides, overrides_path
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
    """Both references resolved to records and ids, the rule checks, path, override, verdict."""

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
    weights: PairScore | None = None
    constraints: list[str] = field(default_factory=list)
    identifiers: dict[str, list[str]] = field(default_factory=dict)


def _record_for(conn: Connection, ref: str) -> tuple[str, str | None]:
    """A record key and its concord id for a reference (concord id -> its seed record)."""
    il = t.identity_links
    gid = surviving_id(conn, ref)
    if gid is not None:
        keys = [
            record_key(s, sid)
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
        source, sid = split_record_key(ref)
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
            parent[record_key(s, sid)] = (matched, rule, float(score))

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


def rule_checks(
    ra: CustomerRecord,
    rb: CustomerRecord,
    config: PipelineConfig,
    common: frozenset[str] = frozenset(),
) -> list[RuleCheck]:
    """Every configured rule evaluated on two records, with the evidence for or against."""
    checks = []
    for rule in config.identity.rules:
        verdict = rule_verdict(ra, rb, rule, common)
        checks.append(RuleCheck(rule.name, rule.type, verdict.fires, verdict.detail, verdict.score))
    return checks


def explain(store: Store, config: PipelineConfig, a: str, b: str) -> Explanation:
    """Why references ``a`` and ``b`` are or are not the same customer, from the store."""
    with store.engine.connect() as conn:
        ka, ida = _record_for(conn, a)
        kb, idb = _record_for(conn, b)
        same = ida is not None and ida == idb
        path = _path(conn, ka, kb, ida) if same and ida else []
    pair = [split_record_key(k) for k in (ka, kb)]
    records = {r.key: r for r in load_customer_records(store, config.identity, pair)}
    out = Explanation(a, b, ka, kb, ida, idb, same, path=path)
    if ka in records and kb in records and ka != kb:
        common = common_tokens(name_keys_in_store(store))
        out.checks = rule_checks(records[ka], records[kb], config, common)
        ra, rb = records[ka], records[kb]
        out.identifiers = {
            ka: [k.label() for k in ra.identifiers],
            kb: [k.label() for k in rb.identifiers],
        }
        prob = config.identity.rule("probabilistic")
        if prob is not None and kind_of(ra) == kind_of(rb):
            found = latest_model(store)
            model = found[0] if found else Model()
            tf = term_frequencies(load_customer_records(store, config.identity), kind_of(ra))
            out.weights = explain_pair(ra, rb, model, tf)
            both = sorted([ra, rb], key=lambda r: r.key)
            uf = ConstrainedUnionFind(2, [], record_evidence(both), prob.cross_country_weight)
            why = uf.check(0, 1, deterministic=False, weight=out.weights.match_weight)
            if why:
                out.constraints.append(why)
            for c in out.checks:
                if c.type == "probabilistic":
                    fires = out.weights.probability >= prob.min_probability and not why
                    out.checks[out.checks.index(c)] = RuleCheck(
                        c.rule,
                        c.type,
                        fires,
                        f"match weight {out.weights.match_weight:+.2f}, probability "
                        f"{out.weights.probability:.4f} (links at {prob.min_probability:g})"
                        + (f"; refused: {why}" if why else ""),
                        round(out.weights.probability, 4),
                    )
    base = config.path.parent if config.path else None
    overrides = load_overrides(overrides_path(config.identity.overrides, base))
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
