"""The blast-radius guard: clusters a run would make that wait for a data steward instead.

A cluster of more than ``identity.guard.max_cluster_size`` records that was not that cluster
before, or every cluster that joins existing golden ids when the run would change more than
``max_changed_ids_pct`` percent of them (over at least ``min_prior_ids`` ids), is held: it is
split back into *parts* (the records of each existing id, with the new records that linked to
them, or for a first run the groups joined by deterministic links alone) and the links that
would join the parts (*bridges*) are written to ``identity_reviews`` with their evidence.
``concord identity review`` lists them; ``accept`` writes the bridges as ``force_merge`` and
``reject`` as ``never_merge`` entries of the overrides file, so the next run follows the decision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from concord.config import GuardConfig
from concord.identity.constraints import FORCE_RULE
from concord.identity.linking import SEED_RULE, Link, LinkResult

DETERMINISTIC_RULES = frozenset({"crossref", "tax_id", "identifier", "email", FORCE_RULE, "kept"})


@dataclass(slots=True)
class HeldCluster:
    """A cluster the guard holds: why, its records, the parts kept apart and the bridges."""

    reason: str
    records: list[str]
    parts: list[list[str]]
    bridges: list[dict[str, Any]] = field(default_factory=list)


def _rule_kind(rule: str, rule_types: Mapping[str, str]) -> str:
    return rule_types.get(rule, rule)


def guard(
    result: LinkResult,
    keys: Sequence[str],
    prior: dict[str, str],
    config: GuardConfig,
    rule_types: Mapping[str, str],
    accepted: set[frozenset[str]] = frozenset(),  # type: ignore[assignment]
) -> list[HeldCluster]:
    """Hold the suspicious clusters of ``result`` (changed in place) and return them."""
    index_of = {k: i for i, k in enumerate(keys)}
    prior_sets = [{prior[keys[i]] for i in c if keys[i] in prior} for c in result.clusters]
    prior_ids = set(prior.values())
    merging = [n for n, ids in enumerate(prior_sets) if len(ids) > 1]
    absorbed = sum(len(prior_sets[n]) - 1 for n in merging)
    too_many = (
        len(prior_ids) >= config.min_prior_ids
        and prior_ids
        and 100.0 * absorbed / len(prior_ids) > config.max_changed_ids_pct
    )
    held: dict[int, str] = {}
    for n, cluster in enumerate(result.clusters):
        if frozenset(keys[i] for i in cluster) in accepted:
            continue
        if len(cluster) > config.max_cluster_size:
            before = {k for k, v in prior.items() if v in prior_sets[n]}
            if len(prior_sets[n]) != 1 or len(before) != len(cluster):
                held[n] = (
                    f"{len(cluster)} records in one cluster (more than {config.max_cluster_size})"
                )
        if too_many and n in merging and n not in held:
            held[n] = (
                f"the run would merge {absorbed} of {len(prior_ids)} golden ids (more than "
                f"{config.max_changed_ids_pct:g}%)"
            )
    if not held:
        return []
    out: list[HeldCluster] = []
    new_clusters: list[list[int]] = []
    for n, cluster in enumerate(result.clusters):
        if n not in held:
            new_clusters.append(cluster)
            continue
        parts, bridges = _split(cluster, result, keys, index_of, prior, rule_types)
        new_clusters.extend(parts)
        out.append(
            HeldCluster(
                held[n],
                [keys[i] for i in cluster],
                [[keys[i] for i in p] for p in parts],
                bridges,
            )
        )
    result.clusters = sorted(new_clusters, key=lambda g: g[0])
    return out


def _split(
    cluster: list[int],
    result: LinkResult,
    keys: Sequence[str],
    index_of: dict[str, int],
    prior: dict[str, str],
    rule_types: Mapping[str, str],
) -> tuple[list[list[int]], list[dict[str, Any]]]:
    """Parts of a held cluster (kept links only) and the links between them."""
    has_prior = any(keys[i] in prior for i in cluster)
    parent = {i: i for i in cluster}
    ids: dict[int, set[str]] = {
        i: ({prior[keys[i]]} if keys[i] in prior else set()) for i in cluster
    }

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = []
    for i in cluster:
        link = result.links[i]
        if link.matched_to is None:
            continue
        j = index_of[link.matched_to]
        edges.append((i, j, link))
    # Deterministic links first, so a part grows from what is certain.
    edges.sort(key=lambda e: _rule_kind(e[2].rule, rule_types) not in DETERMINISTIC_RULES)
    bridges: list[dict[str, Any]] = []
    for i, j, link in edges:
        kind = _rule_kind(link.rule, rule_types)
        ri, rj = find(i), find(j)
        ok = (kind in DETERMINISTIC_RULES or has_prior) and (
            not ids[ri] or not ids[rj] or ids[ri] == ids[rj]
        )
        if ok and ri != rj:
            parent[rj] = ri
            ids[ri] |= ids[rj]
        elif ri != rj:
            weight = result.weights.get((min(i, j), max(i, j)))
            bridges.append(
                {
                    "a": keys[i],
                    "b": keys[j],
                    "rule": link.rule,
                    "score": link.score,
                    "weight": weight,
                }
            )
    groups: dict[int, list[int]] = defaultdict(list)
    for i in cluster:
        groups[find(i)].append(i)
    parts = sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])
    _relink(parts, edges, result, keys)
    return parts, bridges


def _relink(
    parts: list[list[int]],
    edges: list[tuple[int, int, Link]],
    result: LinkResult,
    keys: Sequence[str],
) -> None:
    """Each part's spanning tree: its first record the seed, links inside the part only."""
    part_of = {i: n for n, p in enumerate(parts) for i in p}
    adjacency: dict[int, list[tuple[int, Link]]] = defaultdict(list)
    for i, j, link in edges:
        if part_of[i] == part_of[j]:
            adjacency[i].append((j, link))
            adjacency[j].append((i, link))
    for part in parts:
        seed = part[0]
        result.links[seed] = Link(SEED_RULE, 1.0, None)
        seen = {seed}
        stack = [seed]
        while stack:
            node = stack.pop()
            for other, link in adjacency.get(node, ()):
                if other not in seen:
                    seen.add(other)
                    result.links[other] = Link(link.rule, link.score, keys[node])
                    stack.append(other)
