"""The store: every stage reads and writes here, so each can be retried or resumed alone.

``tables`` defines the schema (migrated by Alembic), ``Store`` wraps an engine with the bulk
operations the stages need (upserts through the driver's executemany with ``ON CONFLICT``).
"""

from concord.store.rejects import Reject
from concord.store.store import (
    STAGING_CACHE_KIB,
    StagedRow,
    Store,
    WatermarkState,
    driver_processors,
    keep_newest,
)
from concord.store.types import MONEY_SCALE

__all__ = [
    "MONEY_SCALE",
    "STAGING_CACHE_KIB",
    "Reject",
    "StagedRow",
    "Store",
    "WatermarkState",
    "driver_processors",
    "keep_newest",
]
