"""Identity resolution: which source customer records are the same customer (golden records).

Records are linked by the rules in ``identity.rules``: deterministic ones (explicit cross-refs,
validated tax ids, non-free-mail emails) on equal normalised keys, and ``fuzzy_name``, which
compares legal-form-stripped names with rapidfuzz inside blocks keyed by the corroborating fields
(postcode, city, phone, email domain), so cost grows with block sizes, not with n². Manual
overrides (force-merge, never-merge) win over every rule. The links form one spanning tree per
cluster, stored as ``identity_links`` (rule, score, matched_to). Clusters keep stable concord ids
across runs: a new record joins an existing cluster's id; when rules join two clusters the id
holding most records survives and a ``merge`` event records the absorbed one
(``golden.status='merged'``, ``merged_into``); when a cluster breaks up, the part holding most of
the id's records keeps it and the rest get new ids with a ``split`` event. New ids derive from the
cluster's first record key, so a rerun after a crash gives the same ids. Only changed links are
written.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from cleanco.clean import prepare_default_terms
from cleanco.non_nfkd_map import NON_NFKD_MAP
from rapidfuzz import fuzz
from rapidfuzz.process import cdist
from sqlalchemy import Connection, Text, cast, delete, select, tuple_, update
from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

from concord.config import IdentityConfig, MatchRuleConfig
from concord.errors import ConfigError
from concord.store import Store
from concord.store import tables as t
from concord.store.store import utcnow
from concord.yamlfile import load_yaml

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")
_NON_DIGIT = re.compile(r"\D")
_DROP_CHARS = str.maketrans("", "", ".'’`´")
_SPACE_CHARS = re.compile(r"[^\w]+")
_STOPWORDS = frozenset({"the", "and", "und", "et", "of"})
ABBREVIATIONS: dict[str, str] = {
    "corporation": "corp",
    "company": "co",
    "incorporated": "inc",
    "limited": "ltd",
    "international": "intl",
    "brothers": "bros",
    "manufacturing": "mfg",
    "technologies": "tech",
    "technology": "tech",
    "industries": "ind",
    "associates": "assoc",
    "gesellschaft": "ges",
    "mit": "m",
    "beschrankter": "b",
    "haftung": "h",
}
"""Spelled-out words mapped to the abbreviation used in names, before legal forms are stripped."""

SEED_RULE = "seed"
FORCE_RULE = "force_merge"


@functools.cache
def _legal_forms() -> frozenset[tuple[str, ...]]:
    """Legal-form token sequences from cleanco's term data (GmbH, Corp, S.A., Ltd, ...)."""
    forms = {tuple(parts) for _n, parts in prepare_default_terms()}
    forms |= {("gmbh", "co", "kg"), ("m", "b", "h"), ("ges", "m", "b", "h"), ("co", "kg")}
    return frozenset(forms)


def fold(text: str) -> str:
    """Case-folded text without accents (é -> e, ß -> ss, ø -> o)."""
    text = text.casefold()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(NON_NFKD_MAP.get(c, c) for c in decomposed if unicodedata.category(c) != "Mn")


LONG_LEGAL_WORDS = (
    "corporation",
    "incorporated",
    "limited",
    "company",
    "gesellschaft",
    "aktiengesellschaft",
    "unlimited",
)
"""Spelled-out legal forms also stripped when misspelt ("Corportion", "Limitd")."""


def _is_legal_form(tokens: list[str], forms: frozenset[tuple[str, ...]], size: int) -> bool:
    if tuple(tokens) in forms:
        return True
    return (
        size == 1
        and len(tokens[0]) >= 6
        and any(fuzz.ratio(tokens[0], w) >= 80 for w in LONG_LEGAL_WORDS)
    )


@functools.lru_cache(maxsize=262_144)
def name_key(name: str | None, sort_tokens: bool = False) -> str:
    """Comparable company or person name: folded, abbreviated, legal forms stripped.

    "ACME Corporation GmbH", "Acme Corp." and "acme corp" all give "acme". With ``sort_tokens``
    (used for private persons) word order does not matter: "Smith John" == "John Smith". A name
    made only of legal-form words is kept whole.
    """
    if not name:
        return ""
    text = _SPACE_CHARS.sub(" ", fold(name).replace("&", " and ").translate(_DROP_CHARS))
    tokens = [ABBREVIATIONS.get(tok, tok) for tok in text.split() if tok not in _STOPWORDS]
    forms = _legal_forms()
    stripped = list(tokens)
    changed = True
    while changed and len(stripped) > 1:
        changed = False
        for size in (4, 3, 2, 1):
            if len(stripped) > size and _is_legal_form(stripped[-size:], forms, size):
                del stripped[-size:]
                changed = True
                break
            if len(stripped) > size and tuple(stripped[:size]) in forms:
                del stripped[:size]
                changed = True
                break
    kept = stripped or tokens
    return " ".join(sorted(kept) if sort_tokens else kept)


def normalise_email(value: str | None, free_mail: frozenset[str] = frozenset()) -> str | None:
    """Lower-cased address; None for shared free-mail domains (they do not identify a company)."""
    if not value or "@" not in value:
        return None
    email = value.strip().lower()
    if email.rsplit("@", 1)[1] in free_mail:
        return None
    return email


def email_domain(value: str | None, free_mail: frozenset[str] = frozenset()) -> str | None:
    """The domain of a company address (None for free-mail domains)."""
    email = normalise_email(value, free_mail)
    return email.rsplit("@", 1)[1] if email else None


@functools.lru_cache(maxsize=65536)
def normalise_tax_id(value: str | None, country: str | None = None) -> str | None:
    """Compact, validated VAT number with country prefix (python-stdnum); None if invalid.

    EU numbers are validated by ``stdnum.eu.vat``; other countries (GB, CH, NO, ...) by their
    ``vat`` module when the record's country is known.
    """
    if not value:
        return None
    compact = _NON_ALNUM.sub("", value).upper()
    if not compact:
        return None
    if country and not compact[:2].isalpha():
        compact = country.upper() + compact
    try:
        return str(eu_vat.validate(compact))
    except StdnumError:
        pass
    cc = compact[:2].lower()
    try:
        module = get_cc_module(cc, "vat")
    except (ImportError, ValueError):
        module = None
    if module is None:
        return None
    try:
        return cc.upper() + _NON_ALNUM.sub("", str(module.validate(compact[2:]))).upper()
    except StdnumError:
        try:
            return cc.upper() + _NON_ALNUM.sub("", str(module.validate(compact))).upper()
        except StdnumError:
            return None


def normalise_phone(value: str | None) -> str | None:
    """Last nine digits of a phone number (drops country and trunk prefixes); None if too short."""
    if not value:
        return None
    digits = _NON_DIGIT.sub("", value)
    return digits[-9:] if len(digits) >= 6 else None


def normalise_postcode(value: str | None) -> str | None:
    if not value:
        return None
    code = _NON_ALNUM.sub("", value).upper()
    return code or None


@dataclass(slots=True)
class CustomerRecord:
    """What identity needs of one canonical customer row, already normalised for matching."""

    source: str
    source_id: str
    name: str
    name_key: str
    country: str | None
    is_person: bool
    tax_id: str | None
    emails: tuple[str, ...]
    email_domains: tuple[str, ...]
    phones: tuple[str, ...]
    postcodes: tuple[str, ...]
    cities: tuple[str, ...]
    crossrefs: tuple[str, ...]
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.source_id}"


def record_from_data(
    source: str,
    source_id: str,
    data: dict[str, Any],
    free_mail: frozenset[str],
    updated_at: datetime | None = None,
) -> CustomerRecord:
    """Normalise one canonical customer (``Customer.model_dump(mode='json')``) for matching."""
    country = data.get("country") or None
    raw_emails = data.get("emails") or []
    emails = tuple(e for e in (normalise_email(x, free_mail) for x in raw_emails) if e)
    addresses = [a for a in data.get("addresses") or [] if isinstance(a, dict)]
    if country is None:
        country = next((a.get("country") for a in addresses if a.get("country")), None)
    return CustomerRecord(
        source=source,
        source_id=source_id,
        name=str(data.get("name") or ""),
        name_key=name_key(data.get("name"), bool(data.get("is_person"))),
        country=country,
        is_person=bool(data.get("is_person")),
        tax_id=normalise_tax_id(data.get("tax_id"), country),
        emails=emails,
        email_domains=tuple(sorted({e.rsplit("@", 1)[1] for e in emails})),
        phones=tuple(p for p in (normalise_phone(x) for x in data.get("phones") or []) if p),
        postcodes=tuple(p for p in (normalise_postcode(a.get("postcode")) for a in addresses) if p),
        cities=tuple(fold(a["city"]).strip() for a in addresses if a.get("city")),
        crossrefs=tuple(str(x) for x in data.get("crossrefs") or [] if x),
        updated_at=updated_at,
    )


# -- overrides ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverridePair:
    a: str
    b: str
    reason: str
    where: str


@dataclass(frozen=True, slots=True)
class Overrides:
    """Manual decisions that win over rules: record keys ``source:id`` to join or keep apart."""

    force_merge: tuple[OverridePair, ...] = ()
    never_merge: tuple[OverridePair, ...] = ()

    def never(self, a: str, b: str) -> OverridePair | None:
        return next((p for p in self.never_merge if {p.a, p.b} == {a, b}), None)

    def forced(self, a: str, b: str) -> OverridePair | None:
        return next((p for p in self.force_merge if {p.a, p.b} == {a, b}), None)


def load_overrides(path: Path | None) -> Overrides:
    """Read the overrides file; every error names file, line and key. No file means none."""
    if path is None:
        return Overrides()
    if not path.is_file():
        raise ConfigError(f"identity overrides file not found: {path}", file=str(path))
    doc = load_yaml(path)
    data = doc.data or {}
    if not isinstance(data, dict) or set(data) - {"force_merge", "never_merge"}:
        raise ConfigError(
            "overrides file must be a mapping with only force_merge and never_merge lists",
            file=str(path),
            line=1,
        )
    parsed: dict[str, list[OverridePair]] = {"force_merge": [], "never_merge": []}
    for kind in parsed:
        items = data.get(kind) or []
        if not isinstance(items, list):
            line = (doc.locate((kind,)) or (None, None))[0]
            raise ConfigError("must be a list", file=str(path), line=line, key=kind)
        for i, item in enumerate(items):
            line = (doc.locate((kind, i)) or (None, None))[0]
            records = item.get("records") if isinstance(item, dict) else item
            if (
                not isinstance(records, list)
                or len(records) != 2
                or not all(isinstance(r, str) and ":" in r for r in records)
            ):
                raise ConfigError(
                    "each entry needs records: [source:id, source:id]",
                    file=str(path),
                    line=line,
                    key=f"{kind}.{i}",
                )
            reason = str(item.get("reason", "")) if isinstance(item, dict) else ""
            parsed[kind].append(OverridePair(records[0], records[1], reason, f"{path}:{line}"))
    clash = {frozenset((p.a, p.b)) for p in parsed["force_merge"]} & {
        frozenset((p.a, p.b)) for p in parsed["never_merge"]
    }
    if clash:
        pair = sorted(next(iter(clash)))
        raise ConfigError(
            f"records {pair[0]} and {pair[-1]} are in both force_merge and never_merge",
            file=str(path),
        )
    return Overrides(tuple(parsed["force_merge"]), tuple(parsed["never_merge"]))


def overrides_path(config: IdentityConfig, base: Path | None = None) -> Path | None:
    """The overrides file, relative paths taken from the config file's folder."""
    if config.overrides is None:
        return None
    if config.overrides.is_absolute() or base is None:
        return config.overrides
    return base / config.overrides


# -- linking -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Link:
    """Why a record is in its cluster: the rule, its score and the record it matched."""

    rule: str
    score: float
    matched_to: str | None


@dataclass(slots=True)
class Edge:
    a: int
    b: int
    rule: str
    score: float


class _ConstrainedUnionFind:
    """Union-find over record indices that refuses unions joining a never-merge pair."""

    def __init__(self, n: int, never: Sequence[tuple[int, int]]) -> None:
        self.parent = list(range(n))
        self.tags: dict[int, set[tuple[int, int]]] = {}
        for i, (a, b) in enumerate(never):
            self.tags.setdefault(a, set()).add((i, 0))
            self.tags.setdefault(b, set()).add((i, 1))

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> bool | None:
        """True if joined, False if already together, None if an override forbids it."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        ta, tb = self.tags.get(ra), self.tags.get(rb)
        if ta and tb and any((i, 1 - side) in tb for i, side in ta):
            return None
        if rb < ra:
            ra, rb = rb, ra
            ta, tb = tb, ta
        self.parent[rb] = ra
        if tb:
            self.tags[ra] = (ta or set()) | tb
            del self.tags[rb]
        return True


@dataclass(slots=True)
class LinkResult:
    """Clusters (lists of record indices, each sorted) and the tree link of every record."""

    clusters: list[list[int]]
    links: list[Link]
    blocked: list[tuple[int, int, str]] = field(default_factory=list)
    comparisons: int = 0


def deterministic_edges(records: Sequence[CustomerRecord], rule: MatchRuleConfig) -> Iterator[Edge]:
    """Edges from equal normalised keys: each record to the first record holding its key."""
    if rule.type == "crossref":
        by_ref: dict[str, int] = {}
        for i, rec in enumerate(records):
            by_ref.setdefault(rec.key, i)
            by_ref.setdefault(f"{rec.source}:customers:{rec.source_id}", i)
        for i, rec in enumerate(records):
            for ref in rec.crossrefs:
                j = by_ref.get(ref)
                if j is not None and j != i:
                    yield Edge(j, i, rule.name, 1.0)
        return
    owners: dict[str, int] = {}
    for i, rec in enumerate(records):
        keys: Iterable[str] = (rec.tax_id,) if rule.type == "tax_id" and rec.tax_id else rec.emails
        if rule.type == "tax_id" and not rec.tax_id:
            continue
        for value in keys:
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


def blocking_fields(rule: MatchRuleConfig) -> list[str]:
    """Corroborating fields worth a block of their own.

    A pair that agrees only on fields left out here cannot gather the evidence the rule needs
    (their weights sum below both minimums), so dropping their blocks loses no link the rule
    would make: with the default weights the large city blocks are not needed.
    """
    need = min(rule.min_corroboration, rule.person_min_corroboration)
    ordered = sorted(rule.corroborate.items(), key=lambda kv: kv[1])
    dropped: set[str] = set()
    total = 0.0
    for fname, weight in ordered:
        if total + weight < need:
            total += weight
            dropped.add(fname)
    return [f for f in rule.corroborate if f not in dropped]


def _block_keys(
    rec: CustomerRecord, rule: MatchRuleConfig, fields: Sequence[str]
) -> Iterator[tuple[str, ...]]:
    country = (rec.country or "") if rule.same_country else ""
    for fname in fields:
        values: tuple[str, ...]
        if fname == "postcode":
            values = rec.postcodes
        elif fname == "city":
            values = rec.cities
        elif fname == "phone":
            values = rec.phones
        else:
            values = rec.email_domains
        for v in values:
            yield (fname, country, v)
    if rule.unique_name_weight:
        yield ("name", country, rec.name_key)
    if rule.min_corroboration == 0 or rule.person_min_corroboration == 0:
        yield ("prefix", country, rec.name_key[:4])


def _blocks(
    records: Sequence[CustomerRecord], rule: MatchRuleConfig, max_block: int
) -> Iterator[list[int]]:
    """Candidate groups: records sharing a corroborating value (the rule needs one anyway).

    A block larger than ``max_block`` is split by the first letters of the name key, and what is
    still too large is cut into overlapping windows of name-sorted records, so the number of
    comparisons grows near-linearly with the records.
    """
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    fields = blocking_fields(rule)
    for i, rec in enumerate(records):
        if rec.name_key:
            for key in _block_keys(rec, rule, fields):
                index[key].append(i)
    for members in index.values():
        if len(members) < 2:
            continue
        yield from _split_block(records, members, max_block, 0)


def _split_block(
    records: Sequence[CustomerRecord], members: list[int], max_block: int, depth: int
) -> Iterator[list[int]]:
    if len(members) <= max_block:
        yield members
        return
    if depth < 2:
        sub: dict[str, list[int]] = defaultdict(list)
        for i in members:
            sub[records[i].name_key[: depth + 1]].append(i)
        if len(sub) > 1:
            for part in sub.values():
                if len(part) > 1:
                    yield from _split_block(records, part, max_block, depth + 1)
            return
    ordered = sorted(members, key=lambda i: records[i].name_key)
    step = max(max_block // 2, 1)
    for start in range(0, len(ordered) - 1, step):
        window = ordered[start : start + max_block]
        if len(window) > 1:
            yield window


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

    for members in _blocks(records, rule, max_block):
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


def link_records(
    records: Sequence[CustomerRecord], config: IdentityConfig, overrides: Overrides = Overrides()
) -> LinkResult:
    """Apply overrides and rules in order; return clusters and one tree link per record.

    ``records`` must be sorted by key. Force-merges are applied first, then each rule in config
    order (fuzzy edges best first); a union that would join a never-merge pair is refused.
    """
    position = {rec.key: i for i, rec in enumerate(records)}
    never = [
        (position[p.a], position[p.b])
        for p in overrides.never_merge
        if p.a in position and p.b in position
    ]
    uf = _ConstrainedUnionFind(len(records), never)
    tree: dict[int, list[tuple[int, str, float]]] = defaultdict(list)
    result = LinkResult(clusters=[], links=[])

    def apply(edges: Iterable[Edge]) -> None:
        for e in edges:
            joined = uf.union(e.a, e.b)
            if joined:
                tree[e.a].append((e.b, e.rule, e.score))
                tree[e.b].append((e.a, e.rule, e.score))
            elif joined is None:
                result.blocked.append((e.a, e.b, e.rule))

    apply(
        Edge(position[p.a], position[p.b], FORCE_RULE, 1.0)
        for p in overrides.force_merge
        if p.a in position and p.b in position
    )
    for rule in config.rules:
        if rule.type == "fuzzy_name":
            edges, result.comparisons = fuzzy_edges(records, rule, config.max_block_size)
            apply(edges)
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
            for other, rule_name, score in tree.get(node, ()):
                if links[other] is None:
                    links[other] = Link(rule_name, score, records[node].key)
                    stack.append(other)
    result.clusters = sorted(members.values(), key=lambda g: g[0])
    result.links = [link or seed_link for link in links]
    return result


# -- ids across runs ---------------------------------------------------------------------------


def concord_id_for(first_key: str, taken: set[str]) -> str:
    """Deterministic id from the cluster's first record key; lengthened on the rare collision."""
    digest = hashlib.blake2b(first_key.encode(), digest_size=16).hexdigest()
    for size in (16, 20, 24, 29):
        candidate = f"cc_{digest[:size]}"
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"cannot derive a unique concord id for {first_key}")


@dataclass(slots=True)
class Assignment:
    """Concord id of every record key, and the merge/split events that got there."""

    ids: dict[str, str]
    new_ids: list[str]
    events: list[dict[str, Any]]


def assign_ids(
    clusters: Sequence[Sequence[str]],
    prior: dict[str, str],
    taken: set[str],
    edges_between: dict[frozenset[str], tuple[str, str, str]] | None = None,
) -> Assignment:
    """Give each cluster (member keys, sorted) a stable id given last run's ids.

    A prior id goes to the cluster holding most of its records (ties: the cluster with the
    smallest key); a cluster that receives several keeps the one with most members (ties: the
    smallest id) and records a ``merge`` event for each other; a cluster that receives none gets
    a new id, with a ``split`` event if its records had an id before.
    """
    counts: list[dict[str, int]] = []
    for c in clusters:
        pids = [prior[k] for k in c if k in prior]
        if not pids:
            counts.append({})
        elif pids.count(pids[0]) == len(pids):
            counts.append({pids[0]: len(pids)})
        else:
            counts.append(dict(Counter(pids)))
    owner: dict[str, int] = {}
    for ci, cnt in enumerate(counts):
        for pid, n in cnt.items():
            held = owner.get(pid)
            if held is None or n > counts[held][pid]:
                owner[pid] = ci
    owned: dict[int, list[str]] = defaultdict(list)
    for pid, ci in owner.items():
        owned[ci].append(pid)
    taken = set(taken)
    out = Assignment(ids={}, new_ids=[], events=[])
    for ci, members in enumerate(clusters):
        mine = sorted(owned.get(ci, []), key=lambda p: (-counts[ci][p], p))
        if mine:
            gid = mine[0]
            for other in mine[1:]:
                detail: dict[str, Any] = {"members": len(members)}
                why = (edges_between or {}).get(frozenset((gid, other)))
                if why:
                    detail.update(rule=why[0], records=[why[1], why[2]])
                out.events.append(
                    {"kind": "merge", "concord_id": gid, "other_id": other, "detail": detail}
                )
        else:
            gid = concord_id_for(members[0], taken)
            taken.add(gid)
            out.new_ids.append(gid)
            if counts[ci]:
                source_id = sorted(counts[ci].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
                out.events.append(
                    {
                        "kind": "split",
                        "concord_id": gid,
                        "other_id": source_id,
                        "detail": {"members": len(members), "records": list(members[:20])},
                    }
                )
        for k in members:
            out.ids[k] = gid
    return out


# -- the resolve stage -------------------------------------------------------------------------


@dataclass(slots=True)
class ResolveReport:
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "clusters": self.clusters,
            "multi_record_clusters": self.multi_record_clusters,
            "new_ids": self.new_ids,
            "merges": self.merges,
            "splits": self.splits,
            "links_written": self.links_written,
            "links_removed": self.links_removed,
            "comparisons": self.comparisons,
            "blocked_by_override": self.blocked_by_override,
            "links_by_rule": dict(self.links_by_rule),
        }


def load_customer_records(
    store: Store, config: IdentityConfig, keys: Iterable[tuple[str, str]] | None = None
) -> list[CustomerRecord]:
    """Every canonical customer (or only ``keys``), normalised, sorted by key; streamed."""
    free_mail = frozenset(d.lower() for d in config.free_mail_domains)
    c = t.customers
    q = select(c.c.source, c.c.source_id, c.c.updated_at, cast(c.c.data, Text))
    if keys is not None:
        q = q.where(tuple_(c.c.source, c.c.source_id).in_(list(keys)))
    out: list[CustomerRecord] = []
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(q)
        for source, sid, updated, data in result:
            out.append(record_from_data(source, sid, orjson.loads(data), free_mail, updated))
    out.sort(key=lambda r: r.key)
    return out


def resolve(
    store: Store, config: IdentityConfig, run_id: str, *, base_dir: Path | None = None
) -> ResolveReport:
    """Link all canonical customers and persist clusters with stable ids, in one transaction.

    ``base_dir`` is where a relative overrides path is read from (the config file's folder).
    """
    overrides = load_overrides(overrides_path(config, base_dir))
    records = load_customer_records(store, config)
    result = link_records(records, config, overrides)
    keys = [r.key for r in records]
    report = ResolveReport(
        records=len(records),
        clusters=len(result.clusters),
        multi_record_clusters=sum(1 for c in result.clusters if len(c) > 1),
        comparisons=result.comparisons,
        blocked_by_override=len(result.blocked),
    )
    for link in result.links:
        report.links_by_rule[link.rule] = report.links_by_rule.get(link.rule, 0) + 1
    now = utcnow()
    il, g = t.identity_links, t.golden
    with store.begin() as conn:
        prior_rows = {
            f"{s}:{sid}": (gid, rule, score, matched)
            for s, sid, gid, rule, score, matched in conn.execute(
                select(
                    il.c.source,
                    il.c.source_id,
                    il.c.concord_id,
                    il.c.rule,
                    il.c.score,
                    il.c.matched_to,
                )
            )
        }
        prior = {k: v[0] for k, v in prior_rows.items()}
        golden = dict(conn.execute(select(g.c.concord_id, g.c.status)).all())
        between: dict[frozenset[str], tuple[str, str, str]] = {}
        for i, link in enumerate(result.links):
            if link.matched_to is None:
                continue
            pa, pb = prior.get(keys[i]), prior.get(link.matched_to)
            if pa and pb and pa != pb:
                between.setdefault(frozenset((pa, pb)), (link.rule, link.matched_to, keys[i]))
        assignment = assign_ids(
            [[keys[i] for i in c] for c in result.clusters], prior, set(golden), between
        )
        report.new_ids = len(assignment.new_ids)
        report.merges = sum(1 for e in assignment.events if e["kind"] == "merge")
        report.splits = sum(1 for e in assignment.events if e["kind"] == "split")
        _persist_golden(conn, assignment, golden, run_id)
        changed: list[dict[str, Any]] = []
        for i, key in enumerate(keys):
            link = result.links[i]
            row = (assignment.ids[key], link.rule, link.score, link.matched_to)
            if prior_rows.get(key) != row:
                source, _, sid = key.partition(":")
                changed.append(
                    {
                        "source": source,
                        "source_id": sid,
                        "concord_id": row[0],
                        "rule": row[1],
                        "score": row[2],
                        "matched_to": row[3],
                        "run_id": run_id,
                    }
                )
        for start in range(0, len(changed), 5000):
            store.upsert(conn, il, changed[start : start + 5000], ["source", "source_id"])
        report.links_written = len(changed)
        gone = sorted(set(prior_rows) - set(assignment.ids))
        for start in range(0, len(gone), 500):
            pairs = [tuple(k.split(":", 1)) for k in gone[start : start + 500]]
            conn.execute(delete(il).where(tuple_(il.c.source, il.c.source_id).in_(pairs)))
        report.links_removed = len(gone)
        if assignment.events:
            conn.execute(
                t.identity_events.insert(),
                [{"run_id": run_id, "created_at": now, **e} for e in assignment.events],
            )
    return report


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
        if e["kind"] != "merge":
            continue
        survivor, absorbed = e["concord_id"], e["other_id"]
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
