"""Linking: which customer records are the same customer, and by which rule.

Rules in ``identity.rules`` apply in order. Deterministic ones (explicit cross-refs, validated tax
ids, non-free-mail emails) link records with equal normalised keys, score 1.0; ``fuzzy_name``
compares legal-form-stripped names with rapidfuzz inside blocks (``concord.identity.blocking``)
and asks for corroborating evidence. Manual overrides win over every rule
(``concord.identity.constraints``). The links form one spanning tree per cluster: every record's
``Link`` names the rule, the score and the record it matched.

``rule_verdict`` evaluates one rule on one pair with the same key functions the edges are built
from, so ``concord customers explain`` gives the resolve stage's answer, not a second opinion.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.process import cdist

from concord.config import IdentityConfig, MatchRuleConfig
from concord.identity.blocking import blocks
from concord.identity.constraints import FORCE_RULE, ConstrainedUnionFind, Evidence
from concord.identity.normalise import CustomerRecord
from concord.identity.scoring import Model, Scored, score, train
from concord.overrides import Overrides

SEED_RULE = "seed"
"""The rule name of a cluster's first record: it matched nothing, the others matched it."""


@dataclass(slots=True)
class Link:
    """Why a record is in its cluster: the rule, its score and the record it matched."""

    rule: str
    score: float
    matched_to: str | None


@dataclass(slots=True)
class Edge:
    """Two record indices a rule links, with its score (best edges are applied first)."""

    a: int
    b: int
    rule: str
    score: float
    weight: float = math.inf


@dataclass(slots=True)
class LinkResult:
    """Clusters (lists of record indices, each sorted) and the tree link of every record."""

    clusters: list[list[int]]
    links: list[Link]
    blocked: list[tuple[int, int, str]] = field(default_factory=list)
    comparisons: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    related: list[tuple[int, int, str]] = field(default_factory=list)
    weights: dict[tuple[int, int], float] = field(default_factory=dict)
    model: Model | None = None


def crossref_names(rec: CustomerRecord) -> tuple[str, str]:
    """How another record's ``crossrefs`` may name ``rec``: ``source:id`` or the entity form."""
    return rec.key, f"{rec.source}:customers:{rec.source_id}"


def match_keys(rec: CustomerRecord, rule: MatchRuleConfig) -> tuple[str, ...]:
    """The normalised values a ``tax_id``, ``identifier`` or ``email`` rule links records on."""
    if rule.type == "tax_id":
        return (rec.tax_id,) if rec.tax_id else ()
    if rule.type == "identifier":
        return tuple(f"{k.type}:{k.value}" for k in rec.identifiers if k.valid)
    if rule.type == "email":
        return rec.emails
    raise ValueError(f"rule type {rule.type} does not link on equal keys")


def deterministic_edges(records: Sequence[CustomerRecord], rule: MatchRuleConfig) -> Iterator[Edge]:
    """Edges from equal normalised keys: each record to the first record holding its key."""
    if rule.type == "crossref":
        by_ref: dict[str, int] = {}
        for i, rec in enumerate(records):
            for name in crossref_names(rec):
                by_ref.setdefault(name, i)
        for i, rec in enumerate(records):
            for ref in rec.crossrefs:
                j = by_ref.get(ref)
                if j is not None and j != i:
                    yield Edge(j, i, rule.name, 1.0)
        return
    owners: dict[str, int] = {}
    for i, rec in enumerate(records):
        for value in match_keys(rec, rule):
            j = owners.setdefault(value, i)
            if j != i:
                yield Edge(j, i, rule.name, 1.0)


def corroborations(a: CustomerRecord, b: CustomerRecord, rule: MatchRuleConfig) -> list[str]:
    """Which of the rule's corroborating fields agree between two records."""
    agree: list[str] = []
    for fname in rule.corroborate:
        if fname == "postcode":
            ok = not set(a.postcodes).isdisjoint(b.postcodes)
        elif fname == "city":
            ok = not set(a.cities).isdisjoint(b.cities)
        elif fname == "phone":
            ok = not set(a.phones).isdisjoint(b.phones)
        else:
            ok = not set(a.email_domains).isdisjoint(b.email_domains)
        if ok:
            agree.append(fname)
    return agree


def common_tokens(name_keys: Iterable[str], min_count: int = 20) -> frozenset[str]:
    """Name words frequent in the base ("logistik", "solutions", first names): not distinctive.

    A word is common when more than ``min_count`` names and 0.05% of all names use it.
    """
    counts: Counter[str] = Counter()
    n = 0
    for key in name_keys:
        counts.update(set(key.split()))
        n += 1
    floor = max(min_count, n // 2000)
    return frozenset(tok for tok, uses in counts.items() if uses > floor)


def name_similarity(
    a: CustomerRecord, b: CustomerRecord, common: frozenset[str] = frozenset()
) -> tuple[float, float]:
    """0-100 similarity of the normalised names and of their distinctive (uncommon) words."""
    whole = float(fuzz.ratio(a.name_key, b.name_key))
    da = " ".join(w for w in a.name_key.split() if w not in common)
    db = " ".join(w for w in b.name_key.split() if w not in common)
    if not da or not db:
        return whole, whole
    return whole, float(fuzz.token_set_ratio(da, db))


def fuzzy_verdict(
    a: CustomerRecord,
    b: CustomerRecord,
    rule: MatchRuleConfig,
    common: frozenset[str] = frozenset(),
) -> tuple[bool, float, list[str], str]:
    """Whether ``fuzzy_name`` links two records: (linked, similarity, evidence, reason).

    Evidence lists the agreeing corroborating fields, plus ``unique_name`` when the normalised
    names are identical and contain a word that is not common in the customer base.
    """
    sim, distinct = name_similarity(a, b, common)
    agree = corroborations(a, b, rule)
    weights: dict[str, float] = {str(k): v for k, v in rule.corroborate.items()}
    weight = sum(weights[f] for f in agree)
    if (
        rule.unique_name_weight
        and a.name_key == b.name_key
        and any(w not in common for w in a.name_key.split())
    ):
        agree.append("unique_name")
        weight += rule.unique_name_weight
    need = rule.person_min_corroboration if (a.is_person or b.is_person) else rule.min_corroboration
    if rule.same_country and a.country and b.country and a.country != b.country:
        return False, sim, agree, f"countries differ ({a.country} vs {b.country})"
    if not a.name_key or not b.name_key:
        return False, sim, agree, "a name is empty after normalisation"
    if sim < rule.threshold:
        return False, sim, agree, f"name similarity {sim:.1f} below threshold {rule.threshold}"
    if distinct < rule.distinct_threshold:
        return (
            False,
            sim,
            agree,
            f"distinctive words differ (similarity {distinct:.1f} below "
            f"{rule.distinct_threshold}; common words like industry terms do not count)",
        )
    if weight < need:
        return (
            False,
            sim,
            agree,
            f"evidence {weight:g} ({', '.join(agree) or 'nothing else agrees'}), {need:g} needed",
        )
    return True, sim, agree, f"name similarity {sim:.1f}; {', '.join(agree)} agree ({weight:g})"


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """One rule evaluated on one pair: does it link them, on what evidence, with what score."""

    fires: bool
    detail: str
    score: float | None = None


def rule_verdict(
    a: CustomerRecord,
    b: CustomerRecord,
    rule: MatchRuleConfig,
    common: frozenset[str] = frozenset(),
) -> RuleVerdict:
    """Whether ``rule`` links ``a`` and ``b``, by the same keys and tests as the edges."""
    if rule.type == "crossref":
        a_names_b = set(crossref_names(b)) & set(a.crossrefs)
        b_names_a = set(crossref_names(a)) & set(b.crossrefs)
        if a_names_b or b_names_a:
            named = a.key if a_names_b else b.key
            return RuleVerdict(True, f"{named} names the other as a cross-reference", 1.0)
        return RuleVerdict(False, "neither record names the other")
    if rule.type == "fuzzy_name":
        linked, sim, _agree, why = fuzzy_verdict(a, b, rule, common)
        detail = f"'{a.name_key}' vs '{b.name_key}': {why}"
        return RuleVerdict(linked, detail, round(sim / 100, 4))
    if rule.type == "probabilistic":
        return RuleVerdict(False, "scored by the model: see the match weights")
    shared = sorted(set(match_keys(a, rule)) & set(match_keys(b, rule)))
    if rule.type == "identifier":
        if shared:
            return RuleVerdict(True, f"same valid identifier {shared[0]}", 1.0)
        mine = ", ".join(k.label() for k in a.identifiers) or "none"
        theirs = ", ".join(k.label() for k in b.identifiers) or "none"
        return RuleVerdict(False, f"no valid identifier shared ({mine} vs {theirs})")
    if rule.type == "tax_id":
        if shared:
            return RuleVerdict(True, f"same valid tax id {shared[0]}", 1.0)
        return RuleVerdict(
            False, f"tax ids {a.tax_id or 'missing/invalid'} vs {b.tax_id or 'missing/invalid'}"
        )
    if shared:
        return RuleVerdict(True, f"shared address {shared[0]}", 1.0)
    return RuleVerdict(False, "no shared address (free-mail domains are not compared)")


def fuzzy_edges(
    records: Sequence[CustomerRecord], rule: MatchRuleConfig, max_block: int
) -> tuple[list[Edge], int]:
    """Fuzzy-name edges (best first) and the number of name comparisons made."""
    common = common_tokens(r.name_key for r in records)
    found: dict[tuple[int, int], float] = {}
    seen: set[tuple[int, int]] = set()
    comparisons = 0
    cutoff = rule.threshold
    ratio = fuzz.ratio

    def consider(i: int, j: int) -> None:
        pair = (i, j) if i < j else (j, i)
        if pair in seen:
            return
        seen.add(pair)
        linked, sim, _agree, _why = fuzzy_verdict(records[i], records[j], rule, common)
        if linked:
            found[pair] = sim

    for members in blocks(records, rule, max_block):
        comparisons += len(members) * (len(members) - 1) // 2
        if len(members) <= 3:
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    i, j = members[x], members[y]
                    if ratio(records[i].name_key, records[j].name_key, score_cutoff=cutoff):
                        consider(i, j)
            continue
        names = [records[i].name_key for i in members]
        scores = cdist(names, names, scorer=ratio, score_cutoff=cutoff, dtype=np.uint8)
        rows, cols = np.nonzero(np.triu(scores, k=1))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            consider(members[r], members[c])
    edges = [Edge(a, b, rule.name, round(s / 100.0, 4)) for (a, b), s in found.items()]
    edges.sort(key=lambda e: (-e.score, e.a, e.b))
    return edges, comparisons


def record_evidence(records: Sequence[CustomerRecord]) -> list[Evidence]:
    """The negative evidence of every record (identifiers, country, legal form, relations)."""
    position = {rec.key: i for i, rec in enumerate(records)}
    targets: set[int] = set()
    related: dict[int, set[int]] = defaultdict(set)
    for i, rec in enumerate(records):
        for _kind, key in rec.relations:
            j = position.get(key)
            if j is not None and j != i:
                related[i].add(j)
                targets.add(j)
    out = []
    no_text: frozenset[str] = frozenset()
    no_record: frozenset[int] = frozenset()
    single: dict[str, frozenset[str]] = {}  # one shared set per country and legal form
    for i, rec in enumerate(records):
        ids: dict[str, set[str]] = defaultdict(set)
        for k in rec.identifiers:
            ids[k.type].add(k.value)
        country, form = rec.country, rec.legal_form
        out.append(
            Evidence(
                {t: frozenset(v) for t, v in ids.items()},
                single.setdefault(country, frozenset((country,))) if country else no_text,
                single.setdefault(form, frozenset((form,))) if form else no_text,
                frozenset(related[i]) if i in related else no_record,
                frozenset((i,)) if i in targets or i in related else no_record,
            )
        )
    return out


def related_pairs(records: Sequence[CustomerRecord]) -> list[tuple[int, int, str]]:
    """(record, related record, kind) for every relation naming a record in the base."""
    position = {rec.key: i for i, rec in enumerate(records)}
    out = []
    for i, rec in enumerate(records):
        for kind, key in rec.relations:
            j = position.get(key)
            if j is not None and j != i:
                out.append((i, j, kind))
    return out


def probabilistic_edges(
    records: Sequence[CustomerRecord], rule: MatchRuleConfig, scored: Scored
) -> list[Edge]:
    """Model edges at or above the rule's probability, heaviest first."""
    keep = scored.probability >= rule.min_probability
    order = np.argsort(-scored.weight[keep], kind="stable")
    left, right = scored.left[keep][order], scored.right[keep][order]
    weight, prob = scored.weight[keep][order], scored.probability[keep][order]
    return [
        Edge(int(a), int(b), rule.name, round(float(p), 6), float(w))
        for a, b, w, p in zip(
            left.tolist(), right.tolist(), weight.tolist(), prob.tolist(), strict=True
        )
    ]


def link_records(
    records: Sequence[CustomerRecord],
    config: IdentityConfig,
    overrides: Overrides | None = None,
    *,
    model: Model | None = None,
    scored: Scored | None = None,
    kept: Iterable[tuple[int, int, str, float]] = (),
) -> LinkResult:
    """Apply overrides and rules in order; return clusters and one tree link per record.

    ``records`` must be sorted by key. Force-merges are applied first, then ``kept`` links (an
    incremental run's unchanged tree links: record, matched record, rule, score), then each
    rule in config order (fuzzy and model edges best first); a union that a never-merge pair or
    the negative evidence (``constraints``) forbids is refused and counted. ``model`` scores the
    ``probabilistic`` rule (trained on the records when None); ``scored`` gives its pairs
    already scored (incremental).
    """
    overrides = overrides or Overrides()
    position = {rec.key: i for i, rec in enumerate(records)}
    never = [
        (position[p.a], position[p.b])
        for p in overrides.never_merge
        if p.a in position and p.b in position
    ]
    prob_rule = next((r for r in config.rules if r.type == "probabilistic"), None)
    uf = ConstrainedUnionFind(
        len(records),
        never,
        record_evidence(records),
        prob_rule.cross_country_weight if prob_rule else math.inf,
    )
    tree: dict[int, list[tuple[int, str, float]]] = defaultdict(list)
    result = LinkResult(clusters=[], links=[])
    result.related = related_pairs(records)

    def apply(edges: Iterable[Edge], deterministic: bool = True, forced: bool = False) -> None:
        for e in edges:
            joined = uf.union(e.a, e.b, deterministic=deterministic, weight=e.weight, forced=forced)
            if joined:
                tree[e.a].append((e.b, e.rule, e.score))
                tree[e.b].append((e.a, e.rule, e.score))
                if e.weight != math.inf:
                    result.weights[(min(e.a, e.b), max(e.a, e.b))] = e.weight
            elif joined is None:
                result.blocked.append((e.a, e.b, e.rule))
                reason = uf.refusal.split(" (")[0]
                result.refusals[reason] = result.refusals.get(reason, 0) + 1

    apply(
        (
            Edge(position[p.a], position[p.b], FORCE_RULE, 1.0)
            for p in overrides.force_merge
            if p.a in position and p.b in position
        ),
        forced=True,
    )
    apply(Edge(a, b, rule, score) for a, b, rule, score in kept)
    for rule in config.rules:
        if rule.type == "fuzzy_name":
            edges, result.comparisons = fuzzy_edges(records, rule, config.max_block_size)
            apply(edges, deterministic=False)
        elif rule.type == "probabilistic":
            if scored is None:
                if model is None:
                    model = train(records, config.model.min_training_records)
                scored = score(records, model, floor=min(rule.min_probability, 0.5))
            result.model = model
            result.comparisons += scored.comparisons
            apply(probabilistic_edges(records, rule, scored), deterministic=False)
        else:
            apply(deterministic_edges(records, rule))
    members: dict[int, list[int]] = defaultdict(list)
    find = uf.find
    for i in range(len(records)):
        members[find(i)].append(i)
    seed_link = Link(SEED_RULE, 1.0, None)
    links: list[Link | None] = [None] * len(records)
    for group in members.values():
        seed = group[0]
        links[seed] = seed_link
        if len(group) == 1:
            continue
        stack = [seed]
        while stack:
            node = stack.pop()
            for other, rule_name, score_ in tree.get(node, ()):
                if links[other] is None:
                    links[other] = Link(rule_name, score_, records[node].key)
                    stack.append(other)
    result.clusters = sorted(members.values(), key=lambda g: g[0])
    result.links = [link or seed_link for link in links]
    return result
