"""A stored 360 row: documents figures in ``customer360``, daily ones in ``customer360_daily``.

The daily figures (as_of, days since the last order, the receivable check, RFM, tier,
lifecycle, churn) move every night for every customer; the others only when the customer's
documents do. Kept apart, a night writes one narrow row per customer instead of patching every
wide JSON document, and a reader that needs only daily figures (the receivable gate) or only the
base hash (the push's fingerprint) never reads the wide one. ``whole`` is the row as
``Customer360`` dumps it; every reader of a whole row goes through ``whole_rows`` or ``row_of``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Select, Text, cast, select

from concord.hashing import json_digest
from concord.store import Store
from concord.store import tables as t

BOOKKEEPING = ("updated_at", "content_hash")
"""Fields of a stored 360 row that change without its content changing."""
DAILY = (
    "as_of",
    "days_since_last_order",
    "erp_receivable",
    "erp_receivable_difference",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "value_tier",
    "lifecycle_stage",
    "churn_risk",
    "p_alive",
    "churn",
    "updated_at",
)
"""Figures that change with the date or with the whole base: recomputed for every row."""
DAILY_STORED = (*DAILY, "content_hash")
"""The keys of ``customer360_daily.data``: the daily figures and the whole row's content hash."""
_NOT_BASE = frozenset((*BOOKKEEPING, *DAILY))
_DAILY_KEYS = frozenset(DAILY_STORED)


def base_hash(data: dict[str, Any]) -> str:
    """Hash of a 360 row's figures that change only with its documents (not the daily ones)."""
    return json_digest({k: v for k, v in data.items() if k not in _NOT_BASE})


def daily_hash(base: str, daily: dict[str, Any]) -> str:
    """A row's content hash from its base hash and its daily figures (bookkeeping left out)."""
    return json_digest([base, {k: daily.get(k) for k in DAILY if k not in BOOKKEEPING}])


def row_hash(data: dict[str, Any]) -> str:
    """Stable hash of a 360 row's content (keys sorted), ignoring bookkeeping fields."""
    return daily_hash(base_hash(data), data)


def split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A whole row's JSON form as (documents figures, daily figures with the content hash)."""
    daily = {k: data[k] for k in DAILY_STORED if k in data}
    base = {k: v for k, v in data.items() if k not in _DAILY_KEYS}
    return base, daily


def loads(value: Any) -> dict[str, Any]:
    """A JSON column's value as a dict (drivers give text or an already parsed value)."""
    if isinstance(value, str | bytes):
        out: dict[str, Any] = orjson.loads(value)
        return out
    return dict(value)


def whole(base: Any, daily: Any) -> dict[str, Any]:
    """The row as ``Customer360`` dumps it, from its two stored parts (text or dicts)."""
    return {**loads(base), **loads(daily)}


def whole_select(*columns: Any) -> Select[Any]:
    """``concord_id``, base text and daily text of every 360 row, with ``columns``; joinable."""
    c360, d = t.customer360, t.customer360_daily
    return select(
        c360.c.concord_id, cast(c360.c.data, Text), cast(d.c.data, Text), *columns
    ).select_from(c360.join(d, d.c.concord_id == c360.c.concord_id))


def whole_rows(conn: Connection) -> Iterator[dict[str, Any]]:
    """Every whole row, by concord id, streamed."""
    q = whole_select().order_by(t.customer360.c.concord_id)
    for _gid, base, daily in conn.execution_options(yield_per=2000).execute(q):
        yield whole(base, daily)


def row_of(conn: Connection, concord_id: str) -> dict[str, Any] | None:
    """One customer's whole row; None without one."""
    found = conn.execute(whole_select().where(t.customer360.c.concord_id == concord_id)).first()
    return None if found is None else whole(found[1], found[2])


def write_whole(
    store: Store, conn: Connection, rows: Sequence[dict[str, Any]], run_id: str, at: datetime
) -> None:
    """Store whole rows (``Customer360`` JSON dumps) as they are, in both parts.

    For seeding a store (tests, the push bench); the build writes its rows itself.
    """
    wide, days = [], []
    for data in rows:
        bh = base_hash(data)
        h = daily_hash(bh, data)
        base, daily = split({**data, "content_hash": h})
        gid = data["concord_id"]
        name = str(data["name"]["value"])[:300]
        wide.append(
            {
                "concord_id": gid,
                "name": name,
                "data": base,
                "base_hash": bh,
                "updated_at": at,
                "run_id": run_id,
            }
        )
        days.append(
            {
                "concord_id": gid,
                "data": daily,
                "content_hash": h,
                "value_tier": daily.get("value_tier"),
                "updated_at": at,
                "run_id": run_id,
            }
        )
    store.upsert(conn, t.customer360, wide, ["concord_id"])
    store.upsert(conn, t.customer360_daily, days, ["concord_id"])
