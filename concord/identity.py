"""Identity resolution: which source customer records are the same customer (golden records).

Records are linked by rules configured in ``identity.rules``; each link keeps the rule and score
that made it. Clusters get stable concord ids: an id, once given, stays with its records across
runs (a new record joins an existing cluster, nobody is renumbered); when rules join two existing
clusters the older id survives and a ``merge`` event records the other; when a cluster breaks up,
the part holding the id's first record keeps it and the rest get new ids with a ``split`` event.
Ids are derived from the first record's key, so a rerun after a crash gives the same ids.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, select, update
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

from concord.config import IdentityConfig
from concord.store import Store
from concord.store import tables as t
from concord.store.store import utcnow

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")


@dataclass(slots=True)
class CustomerRecord:
    """What identity needs of one canonical customer row."""

    source: str
    source_id: str
    name: str
    emails: list[str]
    tax_id: str | None
    country: str | None
    crossrefs: list[str]

    @property
    def key(self) -> str:
        return f"{self.source}:{self.source_id}"


@dataclass(slots=True)
class Link:
    rule: str
    score: float
    matched_to: str | None


@dataclass(slots=True)
class ResolveReport:
    records: int = 0
    clusters: int = 0
    new_ids: int = 0
    merges: int = 0
    splits: int = 0
    links_by_rule: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "clusters": self.clusters,
            "new_ids": self.new_ids,
            "merges": self.merges,
            "splits": self.splits,
            "links_by_rule": dict(self.links_by_rule),
        }


def normalise_email(value: str | None, free_mail: frozenset[str] = frozenset()) -> str | None:
    """Lower-cased address; None for shared free-mail domains (they do not identify a company)."""
    if not value or "@" not in value:
        return None
    email = value.strip().lower()
    if email.rsplit("@", 1)[1] in free_mail:
        return None
    return email


def normalise_tax_id(value: str | None, country: str | None = None) -> str | None:
    """Compact, validated VAT number (with country prefix); None if it does not validate."""
    if not value:
        return None
    compact = _NON_ALNUM.sub("", value).upper()
    if country and not compact[:2].isalpha():
        compact = country.upper() + compact
    try:
        return str(eu_vat.validate(compact))
    except StdnumError:
        return None


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        return True


def concord_id_for(first_key: str, taken: set[str]) -> str:
    """Deterministic id from the cluster's first record key; lengthened on the rare collision."""
    digest = hashlib.blake2b(first_key.encode(), digest_size=16).hexdigest()
    for size in (16, 20, 24, 32):
        candidate = f"cc_{digest[:size]}"
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"cannot derive a unique concord id for {first_key}")


def link_records(
    records: Iterable[CustomerRecord], config: IdentityConfig
) -> tuple[dict[str, list[str]], dict[str, Link]]:
    """Apply the rules; return clusters (root -> member keys) and the link that joined each."""
    free_mail = frozenset(d.lower() for d in config.free_mail_domains)
    uf = _UnionFind()
    links: dict[str, Link] = {}
    owners: dict[tuple[str, str], str] = {}
    by_ref: dict[str, str] = {}
    recs = sorted(records, key=lambda r: r.key)
    for rec in recs:
        uf.find(rec.key)
        by_ref[f"{rec.source}:customers:{rec.source_id}"] = rec.key
    for rec in recs:
        keys: list[tuple[str, str]] = []
        if "tax_id" in config.rules:
            tax = normalise_tax_id(rec.tax_id, rec.country)
            if tax:
                keys.append(("tax_id", tax))
        if "email" in config.rules:
            for email in rec.emails:
                norm = normalise_email(email, free_mail)
                if norm:
                    keys.append(("email", norm))
        for rule, value in keys:
            owner = owners.setdefault((rule, value), rec.key)
            if owner != rec.key and uf.union(owner, rec.key):
                links.setdefault(rec.key, Link(rule, 1.0, owner))
        if "crossref" in config.rules:
            for ref in rec.crossrefs:
                other = by_ref.get(ref)
                if other and other != rec.key and uf.union(other, rec.key):
                    links.setdefault(rec.key, Link("crossref", 1.0, other))
    clusters: dict[str, list[str]] = defaultdict(list)
    for rec in recs:
        clusters[uf.find(rec.key)].append(rec.key)
    return dict(clusters), links


def load_customer_records(store: Store) -> list[CustomerRecord]:
    c = t.customers
    out: list[CustomerRecord] = []
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(c.c.source, c.c.source_id, c.c.name, c.c.tax_id, c.c.country, c.c.data)
        )
        for source, sid, name, tax_id, country, data in rows:
            out.append(
                CustomerRecord(
                    source,
                    sid,
                    name,
                    list(data.get("emails") or []),
                    tax_id,
                    country,
                    list(data.get("crossrefs") or []),
                )
            )
    return out


def resolve(store: Store, config: IdentityConfig, run_id: str) -> ResolveReport:
    """Link all canonical customers and persist clusters with stable ids, in one transaction."""
    records = load_customer_records(store)
    clusters, links = link_records(records, config)
    report = ResolveReport(records=len(records), clusters=len(clusters))
    for link in links.values():
        report.links_by_rule[link.rule] = report.links_by_rule.get(link.rule, 0) + 1
    now = utcnow()
    with store.begin() as conn:
        prior = dict(
            conn.execute(
                select(
                    t.identity_links.c.source + ":" + t.identity_links.c.source_id,
                    t.identity_links.c.concord_id,
                )
            ).all()
        )
        golden = {
            gid: status
            for gid, status in conn.execute(select(t.golden.c.concord_id, t.golden.c.status))
        }
        taken = set(golden)
        assigned: dict[str, str] = {}
        kept: set[str] = set()
        events: list[dict[str, Any]] = []
        # Clusters in a stable order: by first member key.
        for members in sorted(clusters.values(), key=lambda m: m[0]):
            prior_ids = sorted({prior[k] for k in members if k in prior} - kept)
            if prior_ids:
                survivor = prior_ids[0]
                for other in prior_ids[1:]:
                    events.append(
                        {
                            "kind": "merge",
                            "concord_id": survivor,
                            "other_id": other,
                            "detail": {"members": len(members)},
                        }
                    )
                    report.merges += 1
                kept.add(survivor)
            else:
                survivor = concord_id_for(members[0], taken)
                taken.add(survivor)
                report.new_ids += 1
                split_from = sorted({prior[k] for k in members if k in prior})
                if split_from:
                    events.append(
                        {
                            "kind": "split",
                            "concord_id": survivor,
                            "other_id": split_from[0],
                            "detail": {"members": len(members)},
                        }
                    )
                    report.splits += 1
            for k in members:
                assigned[k] = survivor
        _persist(conn, assigned, links, golden, events, run_id, now)
    return report


def _persist(
    conn: Connection,
    assigned: dict[str, str],
    links: dict[str, Link],
    golden: dict[str, str],
    events: list[dict[str, Any]],
    run_id: str,
    now: Any,
) -> None:
    active = set(assigned.values())
    new_golden = [
        {
            "concord_id": g,
            "status": "active",
            "merged_into": None,
            "created_run": run_id,
            "updated_run": run_id,
        }
        for g in sorted(active - set(golden))
    ]
    if new_golden:
        conn.execute(t.golden.insert(), new_golden)
    merged = {e["other_id"]: e["concord_id"] for e in events if e["kind"] == "merge"}
    for gid, into in merged.items():
        conn.execute(
            update(t.golden)
            .where(t.golden.c.concord_id == gid)
            .values(status="merged", merged_into=into, updated_run=run_id)
        )
    revived = [g for g in active if golden.get(g) == "merged"]
    for gid in revived:
        conn.execute(
            update(t.golden)
            .where(t.golden.c.concord_id == gid)
            .values(status="active", merged_into=None, updated_run=run_id)
        )
    conn.execute(delete(t.identity_links))
    rows = []
    for key, gid in assigned.items():
        source, _, sid = key.partition(":")
        link = links.get(key)
        rows.append(
            {
                "source": source,
                "source_id": sid,
                "concord_id": gid,
                "rule": link.rule if link else "seed",
                "score": link.score if link else 1.0,
                "matched_to": link.matched_to if link else None,
                "run_id": run_id,
            }
        )
    for i in range(0, len(rows), 5000):
        conn.execute(t.identity_links.insert(), rows[i : i + 5000])
    if events:
        conn.execute(
            t.identity_events.insert(), [{"run_id": run_id, "created_at": now, **e} for e in events]
        )
