"""Finding a golden customer by concord id, record key, ERP customer number or name.

This is ``concord customers show``: a sales user can paste the number the ERP shows
(``C00002``, NAV's ``10000``), or ``source:number`` to say which ERP.

``find_customers`` follows merged ids to their survivor, so an id the CRM still holds from before a
merge keeps working, and returns each customer's 360 row with every linked source record (rule,
score and the record behind its link).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select

from concord.customer360.stored import row_of
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
    """Exact concord id, 'source:id' of a linked record, an ERP customer number, a name part."""
    c360, il, cust = t.customer360, t.identity_links, t.customers
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
            number = select(il.c.concord_id).join(
                cust, and_(cust.c.source == il.c.source, cust.c.source_id == il.c.source_id)
            )
            source, _, bare = query.partition(":")
            by_number = cust.c.number == query
            if bare:
                by_number = by_number | and_(cust.c.source == source, cust.c.number == bare)
            ids = sorted(set(conn.execute(number.where(by_number)).scalars()))
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
            data = row_of(conn, gid)
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
