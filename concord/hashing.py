"""The one content hash: BLAKE2b over bytes, or over a JSON value with its keys sorted.

Raw payloads, canonical rows, customer-360 rows, pushed properties, concord ids and run ids are
all fingerprinted here, so "changed" means the same thing in every stage. ``json_digest`` is
insensitive to key order and writes values JSON cannot hold (Decimal, datetime) as text.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def digest(data: bytes, size: int = 16) -> str:
    """Hex BLAKE2b digest of ``data`` (``size`` bytes, 16 by default: 32 hex characters)."""
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def json_digest(value: Any) -> str:
    """Digest of a JSON value, keys sorted at every level; Decimals and times hashed as text."""
    return digest(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str))
