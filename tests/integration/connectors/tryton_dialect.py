"""The concord.yaml the Tryton-dialect loopback tests share (``sandbox/tryton_rest.py``).

One source ``tryton`` on the shipped ``tryton`` profile with the shipped mappings, fast retries
and a page size small enough to page; each test names its entities and, where it pushes, its
targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.tryton_rest import TrytonRestServer
from tests.repo_config import REPO

MAPPINGS = REPO / "mappings" / "tryton"
FAST_HTTP = {"backoff_base": 0.01, "max_attempts": 2}


def entity(resource: str, mapping: str, **extra: Any) -> dict[str, Any]:
    """An entity on a profile resource with its shipped mapping, paged by last_modified_at."""
    return {
        "resource": resource,
        "mapping": str(MAPPINGS / mapping),
        "cursor_field": "last_modified_at",
        **extra,
    }


CUSTOMERS = entity("party.party", "party.yaml")


def write_tryton_config(
    path: Path,
    server: TrytonRestServer,
    entities: dict[str, dict[str, Any]],
    *,
    page_size: int,
    targets: dict[str, Any] | None = None,
    commit_records: int | None = None,
    **source: Any,
) -> Path:
    """Write ``path`` (SQLite store beside it, key in FAKE_TRYTON_KEY) and return it.

    ``commit_records``: the extract's ``extract_commit_records`` (1: every page commits).
    """
    config: dict[str, Any] = {
        "store_url": f"sqlite:///{path.parent / 'concord.db'}",
        "base_currency": "EUR",
        **({"extract_commit_records": commit_records} if commit_records else {}),
        "sources": {
            "tryton": {
                "type": "rest",
                "profile": "tryton",
                "base_url": server.base_url,
                "auth": {"token": {"env": "FAKE_TRYTON_KEY"}},
                "page_size": page_size,
                "http": FAST_HTTP,
                **source,
                "entities": entities,
            }
        },
        "targets": targets or {},
    }
    path.write_text(yaml.safe_dump(config))
    return path
