"""Build mappings from YAML text in tests (files are named after the test for messages)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from concord.mapping import Mapping, mapping_from_text

ORDER_HEAD = """\
direction: inbound
source: test
entity: orders
id: id
"""

ORDER_FIELDS = {
    "number": "number",
    "customer_id": "customer_id",
    "ordered_at": "order_date",
    "status": "state",
    "currency": "currency",
    "net_total": "net",
    "gross_total": "gross",
}


def mapping(text: str, name: str = "test.yaml") -> Mapping:
    return mapping_from_text(Path(name), textwrap.dedent(text))


def order_mapping(extra: str = "", *, skip: tuple[str, ...] = ()) -> Mapping:
    """An orders mapping with every required field plus ``extra`` field lines."""
    lines = [f"  {k}: {v}" for k, v in ORDER_FIELDS.items() if k not in skip]
    body = (
        ORDER_HEAD
        + "fields:\n"
        + "\n".join(lines)
        + "\n"
        + textwrap.indent(textwrap.dedent(extra), "  ")
    )
    return mapping_from_text(Path("orders.yaml"), body)


def order_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": "SO-1",
        "number": "SO-1",
        "customer_id": "C-1",
        "order_date": "2025-03-01T10:00:00Z",
        "state": "open",
        "currency": "EUR",
        "net": "100.00",
        "gross": "119.00",
    }
    record.update(changes)
    return record
