"""The review queue of held clusters: list, accept (force-merge), reject (never-merge).

The guard (``concord.identity.guard``) writes held clusters to ``identity_reviews``. Deciding
one writes the overrides file (``identity.overrides``), which wins over every rule at the next
resolve: ``accept`` adds each bridge as a ``force_merge`` pair, ``reject`` as a ``never_merge``
pair, with the reviewer's reason. The file keeps its comments; entries are appended to the list.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, update

from concord.errors import ConcordError
from concord.store import Store
from concord.store import tables as t
from concord.utc import utcnow

Decision = Literal["accepted", "rejected"]


@dataclass(frozen=True, slots=True)
class Review:
    """One held cluster as ``concord identity review`` lists it."""

    id: int
    run_id: str
    created_at: datetime
    status: str
    reason: str
    records: list[str]
    parts: list[list[str]]
    bridges: list[dict[str, Any]]


def list_reviews(store: Store, status: str | None = "pending") -> list[Review]:
    """Held clusters (``status`` None: all), oldest first."""
    r = t.identity_reviews
    q = select(r).order_by(r.c.id)
    if status is not None:
        q = q.where(r.c.status == status)
    with store.engine.connect() as conn:
        return [
            Review(
                row.id,
                row.run_id,
                row.created_at,
                row.status,
                row.reason,
                list(row.records),
                [list(p) for p in row.parts],
                list(row.bridges),
            )
            for row in conn.execute(q)
        ]


def get_review(store: Store, review_id: int) -> Review:
    """One review by id, or a clear error."""
    found = [x for x in list_reviews(store, None) if x.id == review_id]
    if not found:
        raise ConcordError(f"no review {review_id}: `concord identity review` lists them")
    return found[0]


def pending_keys(store: Store) -> set[frozenset[str]]:
    """The record sets of pending reviews (the guard does not hold the same cluster twice)."""
    return {frozenset(x.records) for x in list_reviews(store)}


def decide(store: Store, review_id: int, decision: Decision, overrides: Path, reason: str) -> int:
    """Write the review's bridges to the overrides file and mark it decided; pairs written."""
    review = get_review(store, review_id)
    if review.status != "pending":
        raise ConcordError(f"review {review_id} is already {review.status}")
    section = "force_merge" if decision == "accepted" else "never_merge"
    pairs = [(b["a"], b["b"]) for b in review.bridges]
    if not pairs:
        raise ConcordError(f"review {review_id} has no links to decide")
    note = reason or f"review {review_id} {decision} ({review.reason})"
    append_overrides(overrides, section, pairs, note)
    r = t.identity_reviews
    with store.begin() as conn:
        conn.execute(
            update(r).where(r.c.id == review_id).values(status=decision, decided_at=utcnow())
        )
    return len(pairs)


def append_overrides(path: Path, section: str, pairs: list[tuple[str, str]], reason: str) -> None:
    """Append pairs to one list of the overrides file, keeping everything else as written."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    entries = "".join(
        f"  - records: {json.dumps([a, b])}\n    reason: {json.dumps(reason)}\n" for a, b in pairs
    )
    lines = text.splitlines(keepends=True)
    head = re.compile(rf"^{section}:\s*(\[\s*\])?\s*(#.*)?$")
    at = next((n for n, line in enumerate(lines) if head.match(line.rstrip("\n"))), None)
    if at is None:
        if text and not text.endswith("\n"):
            text += "\n"
        path.write_text(f"{text}{section}:\n{entries}", encoding="utf-8")
        return
    lines[at] = f"{section}:\n"
    end = at + 1
    while end < len(lines) and (lines[end].startswith((" ", "-")) or not lines[end].strip()):
        end += 1
    # Keep trailing comment lines (examples) below the new entries' block.
    insert = end
    while insert > at + 1 and not lines[insert - 1].strip():
        insert -= 1
    lines.insert(insert, entries)
    path.write_text("".join(lines), encoding="utf-8")
