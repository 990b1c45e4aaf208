"""Resync: send what a CRM really lacks or holds differently, read back by concord id.

A push trusts concord's push state (what the target last accepted), so a CRM that lost records
(someone deleted them, a new empty portal, a restore) is never told. A resync does not trust it:
for every customer with a 360 row it maps the outbound properties, reads the target's records
back in batches (``ReadingTarget.read``: HubSpot batch read by the id property, Salesforce SOQL
by external id, a REST list endpoint) and plans an upsert for each customer the CRM is missing
(a create) or holds with another value in a property concord writes (an update, whose old values
are what the CRM holds). Customers the CRM holds as concord would send them are confirmed in the
push state. ``full`` re-sends every customer without reading anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from concord.contracts import ObjectKind, ReadingTarget, RemoteRecord
from concord.pipeline.context import RunContext
from concord.push.diff import (
    RETIRED,
    MapFailure,
    Mapped,
    PlannedUpsert,
    StateRow,
    json_form,
    map_customer,
    outbound_mappings,
    planned,
    revive_properties,
    rows_with_state,
    source_fingerprint,
    with_documents,
)


@dataclass
class ResyncCounts:
    """What a resync found: customers checked, missing in the CRM, different, already equal."""

    checked: int = 0
    missing: int = 0
    different: int = 0
    matching: int = 0


@dataclass(frozen=True, slots=True)
class Held:
    """A customer the CRM already holds as concord would send it: confirm, do not send."""

    upsert: PlannedUpsert


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def same_value(sent: Any, held: Any) -> bool:
    """Whether the CRM's value is the one concord sends, across the CRMs' representations.

    An empty string and null are the same (CRMs return either for a cleared property); numbers
    compare as numbers (``"12.50"`` and ``12.5``), booleans and text as their text.
    """
    if sent in (None, "") or held in (None, ""):
        return sent in (None, "") and held in (None, "")
    a, b = _number(sent), _number(held)
    if a is not None and b is not None:
        return a == b
    return str(sent).lower() == str(held).lower() if isinstance(sent, bool) else sent == held


def differences(sent: dict[str, Any], held: dict[str, Any]) -> list[str]:
    """The properties concord writes whose value in the CRM is another one."""
    return [name for name, value in sent.items() if not same_value(value, held.get(name))]


def _read_back(
    target: ReadingTarget, batch: list[tuple[StateRow, Mapped]], extra: Sequence[str] = ()
) -> dict[str, RemoteRecord]:
    """The CRM's records for one page of customers, one read per object kind.

    ``extra``: properties read besides the mapped ones (the retirement mark, which a customer
    that came back must lose).
    """
    found: dict[str, RemoteRecord] = {}
    by_kind: dict[ObjectKind, list[tuple[StateRow, Mapped]]] = {}
    for row, mapped in batch:
        by_kind.setdefault(mapped.object_type, []).append((row, mapped))
    for kind, items in by_kind.items():
        names = sorted({name for _, m in items for name in m.properties} | set(extra))
        for record in target.read(kind, [row.concord_id for row, _ in items], names):
            found[record.key] = record
    return found


def resync_items(
    ctx: RunContext,
    target: ReadingTarget | None,
    target_name: str,
    counts: ResyncCounts,
) -> Iterator[PlannedUpsert | MapFailure | Held]:
    """What a resync sends (``PlannedUpsert``), confirms (``Held``) or cannot map.

    ``target=None`` is a full resync: every customer is re-sent, nothing is read.
    """
    mappings = outbound_mappings(ctx, target_name)
    revive = revive_properties(ctx.config.targets[target_name])  # a retired customer came back
    for rows in rows_with_state(ctx, target_name):
        batch: list[tuple[StateRow, Mapped, str]] = []
        parsed = [(row, orjson.loads(row.daily)) for row in rows]
        for row, data in with_documents(ctx, parsed):
            mapped = map_customer(row.concord_id, data, mappings, target_name)
            if isinstance(mapped, MapFailure):
                yield mapped
            else:
                batch.append((row, mapped, source_fingerprint(row.base_hash, data, mappings)))
        counts.checked += len(batch)
        # the mark is read only where a retired customer came back: an org without it is fine
        back = tuple(revive) if any(row.status == RETIRED for row, _, _ in batch) else ()
        pairs = [(row, m) for row, m, _ in batch]
        held = _read_back(target, pairs, back) if target is not None else {}
        for row, mapped, fingerprint in batch:
            if target is None:
                yield planned(row.concord_id, mapped, row, fingerprint, revive=revive)
                continue
            remote = held.get(row.concord_id)
            if remote is None:
                counts.missing += 1
                yield dataclasses.replace(
                    planned(
                        row.concord_id, mapped, row, fingerprint, forget_state=True, revive=revive
                    ),
                    in_target=False,
                )
                continue
            upsert = dataclasses.replace(
                planned(row.concord_id, mapped, row, fingerprint, revive=revive),
                remote_id=remote.remote_id,
                previous={k: remote.properties.get(k) for k in json_form(mapped.properties)},
                in_target=True,
            )
            if differences(upsert.stored, remote.properties):
                counts.different += 1
                yield upsert
            else:
                counts.matching += 1
                yield Held(upsert)
