"""Finding a golden customer by concord id, source key or name (``concord customers show``).

``find_customers`` follows merged ids to their survivor, so an id the CRM still holds from before a
merge keeps working, and returns each customer's 360 row with every linked source record (rule,
score and the record behind its link).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from concord.identity.ids import surviving_id
from concord.model import split_record_key
from concord.store import Store
from concord.store import tables as t


@dataclass
class CustomerView:
    """One golden customer: its 360 row as stored and its identity links."""

    concord_id: str
    data: dict[str, Any]
    links: list[dict[str, Any]] = field(default_factory=list)
    asked_for: str | None = None  # the merged id the query named, if it was one


def find_customers(store: Store, query: str, limit: int = 20) -> list[CustomerView]:
    """Exact concord id, then 'source:id' of a linked record, then a name substring."""
    c360, il = t.customer360, t.identity_links
    with store.engine.connect() as conn:
        asked: str | None = None
        survivor = surviving_id(conn, query) or query
        if survivor != query:
            asked = query
        ids = list(
            conn.execute(select(c360.c.concord_id).where(c360.c.concord_id == survivor)).scalars()
        )
        if not ids and ":" in query:
            source, sid = split_record_key(query)
            ids = list(
                conn.execute(
                    select(il.c.concord_id).where(il.c.source == source, il.c.source_id == sid)
                ).scalars()
            )
        if not ids:
            ids = list(
                conn.execute(
                    select(c360.c.concord_id)
                    .where(func.lower(c360.c.name).contains(query.lower()))
                    .order_by(c360.c.name)
                    .limit(limit)
                ).scalars()
            )
        views = []
        for gid in ids:
            data = conn.execute(select(c360.c.data).where(c360.c.concord_id == gid)).scalar()
            if data is None:
                continue
            links = [
                dict(r)
                for r in conn.execute(
                    select(il).where(il.c.concord_id == gid).order_by(il.c.source, il.c.source_id)
                ).mappings()
            ]
            views.append(CustomerView(gid, data, links, asked))
    return views
