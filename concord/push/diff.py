"""What a push would change: each customer's outbound properties against what the CRM holds.

Change detection is per target and customer: the hash of the outbound properties the target last
accepted, kept in ``push_state`` with those properties themselves (so a dry run can show old and
new values). ``candidates`` keyset-pages the 360 table and yields, per customer that needs it, a
``PlannedUpsert`` (with the field-level diff), a ``MapFailure`` (the outbound mapping refused the
customer) or a ``Refresh`` (unchanged for the target, but the 360 row changed); a row already
accepted from the same read 360 fields and mappings (``source_fingerprint``) is skipped without
mapping it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import NoneType
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel
from sqlalchemy import Text, cast, func, select

from concord.contracts import ObjectKind, PushRecord, TargetConfig
from concord.customer360.stored import DAILY, whole
from concord.errors import RecordRejected
from concord.hashing import digest, json_digest
from concord.mapping import Mapping, load_mapping
from concord.mapping.functions import rounder
from concord.mapping.paths import rounded_reads
from concord.model import Customer360
from concord.pipeline.context import RunContext
from concord.push.projection import projection
from concord.store import Reject
from concord.store import tables as t

COMPANY: ObjectKind = "company"
PERSON: ObjectKind = "person"
PUSH_ENTITY = "customer360"
"""The entity push rejects are stored under (their source is the target's name)."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One property whose value the push changes (``old`` is None when never sent)."""

    field: str
    old: Any
    new: Any


@dataclass(slots=True)
class PlannedUpsert:
    """One customer to create or update in the target, with what the target holds now."""

    key: str
    object_type: ObjectKind
    properties: dict[str, Any]
    hash: str
    remote_id: str | None
    previous: dict[str, Any] | None  # properties the target last accepted (None: never)
    prior_hash: str | None
    prior_status: str | None
    prior_attempts: int
    source_hash: str | None = None  # fingerprint of the 360 row and mapping it came from
    name: str = ""  # the golden name, for plans a reader checks
    source_ids: tuple[str, ...] = ()  # the ERP records behind the customer (source:number)
    in_target: bool | None = None  # what a read-back found (None: not read, trust push state)
    clear: tuple[str, ...] = ()  # properties sent empty to clear them (a retirement mark)

    @property
    def action(self) -> str:
        """``update`` when the target holds a version of the customer, else ``create``.

        A resync knows from reading the target back; otherwise the push state says.
        """
        if self.in_target is not None:
            return "update" if self.in_target else "create"
        known = self.prior_hash is not None and self.prior_status != "superseded"
        return "update" if known else "create"

    @property
    def retry(self) -> bool:
        """The last attempt of this customer was rejected: this send is a retry."""
        return self.prior_status == "rejected"

    @property
    def stored(self) -> dict[str, Any]:
        """The properties as kept in ``push_state`` (JSON: Decimals as text)."""
        return json_form(self.properties)

    def changes(self) -> list[FieldChange]:
        """Field-level diff against what the target last accepted."""
        old = self.previous or {}
        new = self.stored
        names = sorted(set(old) | set(new))
        return [FieldChange(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n)]

    def record(self) -> PushRecord:
        """What is handed to the target."""
        return PushRecord(
            self.key,
            self.properties,
            object_type=self.object_type,
            remote_id=self.remote_id,
            clear=frozenset(self.clear),
        )


@dataclass(slots=True)
class MapFailure:
    """A customer the outbound mapping refused: stored as a reject, not sent."""

    reject: Reject


@dataclass(slots=True)
class Refresh:
    """Unchanged for the target, but mapped from a newer 360 row: remember the new fingerprint."""

    key: str
    source_hash: str


def json_form(properties: dict[str, Any]) -> dict[str, Any]:
    """Mapped properties as JSON data (what is stored and diffed): Decimals and dates as text."""
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(properties, default=str))
    return loaded


def content_hash(object_type: str, properties: dict[str, Any]) -> str:
    """Hash of what is sent: the object kind and the properties (order-insensitive)."""
    return json_digest({"object_type": object_type, "properties": properties})


def mapping_fingerprint(*mappings: Mapping | None) -> bytes:
    """What identifies the mappings' behaviour: file text, generated code and lookup tables."""
    parts: list[bytes] = []
    for m in mappings:
        if m is None:
            continue
        parts.append(m.path.read_bytes() if m.path.is_file() else b"")
        parts.append(m.python_source.encode())
        parts.append(repr(m.spec.tables).encode())
    return bytes.fromhex(digest(b"".join(parts)))


def source_fingerprint(base_hash: str, daily: dict[str, Any], mappings: OutboundMappings) -> str:
    """Fingerprint of one stored 360 row as the given mappings read it.

    The hash of the row's documents figures (``customer360.base_hash``) and the daily figures
    the projection holds (``mappings.reads``): a night that moves only daily figures no mapping
    reads (as_of, days since the last order, p_alive) leaves it alone, so the row is skipped
    without reading its documents figures, validating or mapping it. A documents figure no
    mapping reads that moved maps the row once more, to the same properties (a ``Refresh``). A
    field absent and a field null differ. A daily figure the mappings read only rounded
    (``mappings.rounded``) counts rounded, as they read it: one that moves in its fourth decimal
    every night (``churn_risk``) leaves the row alone until it moves at the places sent.
    """
    read: dict[str, Any] = {}
    rounded = mappings.rounded
    for name in mappings.daily_reads:
        if name in daily:
            value = daily[name]
            step = rounded.get(name)
            # a float, through the mapping's own round step (the projection keeps floats as is)
            read[name] = step(value) if step is not None and type(value) is float else value
    text = orjson.dumps([base_hash, read], option=orjson.OPT_SORT_KEYS)
    return digest(text + mappings.fingerprint)


Candidate = PlannedUpsert | MapFailure | Refresh
"""What the diff yields per customer: an upsert to send, a mapping failure, or a refresh."""


PUSH_READS = frozenset({"is_person", "name.value", "source_ids"})
"""The 360 paths the push itself reads besides the mappings (the person switch, plan lines)."""


@dataclass(frozen=True, slots=True)
class OutboundMappings:
    """A target's outbound mappings: companies, persons (optional), and their fingerprint.

    ``model`` is what a stored 360 row is validated into before mapping: the projection of
    ``Customer360`` onto the paths both mappings and the push read (``push/projection.py``);
    ``reads`` its top-level fields, all a mapped result can depend on; ``rounded`` those of
    them (float fields) that every mapping reads only rounded, with the round step they apply.
    """

    company: Mapping
    person: Mapping | None
    fingerprint: bytes
    model: type[BaseModel] = Customer360
    rounded: dict[str, Callable[[Any], Any]] = field(default_factory=dict)

    @property
    def reads(self) -> tuple[str, ...]:
        """The 360 row's top-level fields the projection validates (sorted)."""
        return _field_names(self.model)

    @property
    def daily_reads(self) -> tuple[str, ...]:
        """Those of ``reads`` that are daily figures (``customer360.stored.DAILY``)."""
        return _daily_names(self.model)


@lru_cache(maxsize=64)
def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(sorted(model.model_fields))


@lru_cache(maxsize=64)
def _daily_names(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(name for name in _field_names(model) if name in DAILY)


def customer_model(*mappings: Mapping | None) -> type[BaseModel]:
    """The ``Customer360`` projection holding every path these mappings and the push read."""
    used = [m for m in mappings if m is not None]
    values = PUSH_READS.union(*(m.value_paths for m in used))
    containers = frozenset().union(*(m.read_paths - m.value_paths for m in used))
    return projection(Customer360, values, containers)


def float_rounded_reads(
    model: type[BaseModel], *mappings: Mapping | None
) -> dict[str, Callable[[Any], Any]]:
    """Float fields of ``model`` that every one of ``mappings`` reads only rounded, alike.

    Each with the mapping language's round step for its places (``functions.rounder``). Only
    floats: a stored float is the value the projection validates it into, so the step sees
    it as the mapping does; a Decimal field stored as text is left out.
    """
    used = [m for m in mappings if m is not None]
    raw = {p.split(".")[0] for p in PUSH_READS}
    places: dict[str, set[int]] = {}
    for m in used:
        rounded = rounded_reads(m.spec)
        raw.update(p.split(".")[0] for p in m.read_paths if p.split(".")[0] not in rounded)
        for name, n in rounded.items():
            places.setdefault(name, set()).add(n)
    out: dict[str, Callable[[Any], Any]] = {}
    for name, found in places.items():
        info = model.model_fields.get(name)
        if info is None or name in raw or len(found) != 1:
            continue
        if info.annotation is float or set(typing.get_args(info.annotation)) == {float, NoneType}:
            out[name] = rounder(found.pop())
    return out


def outbound_mappings(ctx: RunContext, target_name: str) -> OutboundMappings:
    """The target's outbound mappings as the run loaded them (or from the config)."""
    tcfg = ctx.config.targets[target_name]
    company = ctx.mappings.get(("target", target_name)) or load_mapping(
        ctx.config.resolve_path(tcfg.mapping)
    )
    person = ctx.mappings.get(("target-person", target_name))
    model = customer_model(company, person)
    return OutboundMappings(
        company,
        person,
        mapping_fingerprint(company, person),
        model,
        float_rounded_reads(model, company, person),
    )


@dataclass(frozen=True, slots=True)
class Mapped:
    """One customer's outbound properties, ready to compare or send, with its plan-line facts."""

    name: str  # the golden name
    source_ids: tuple[str, ...]  # the ERP records behind the customer (source:number)
    object_type: ObjectKind
    properties: dict[str, Any]


def map_customer(
    gid: str, data: dict[str, Any], mappings: OutboundMappings, target_name: str
) -> Mapped | MapFailure:
    """A stored 360 row through the target's outbound mapping (persons through its own).

    The row is validated into ``mappings.model``, which holds only what the mappings and the
    push read, with the same types and validators as ``Customer360``.
    """
    record = mappings.model.model_validate(data).model_dump(mode="python")
    is_person = bool(record["is_person"]) and mappings.person is not None
    mapping = mappings.person if is_person and mappings.person else mappings.company
    try:
        props = mapping.apply(record)
    except RecordRejected as exc:
        return MapFailure(
            Reject(
                stage="push",
                source=target_name,
                entity=PUSH_ENTITY,
                source_id=gid,
                field=exc.field,
                reason=exc.reason,
                location=mapping.location(exc.field),
                payload=orjson.dumps(data),
            )
        )
    return Mapped(
        str(record["name"]["value"]),
        tuple(record["source_ids"]),
        PERSON if is_person else COMPANY,
        props,
    )


class StateRow(NamedTuple):
    """One customer's 360 row (its daily part) with the target's push state of it."""

    concord_id: str
    base_hash: str  # of the row's documents figures, read only when the row is mapped
    daily: str  # the daily figures' JSON text
    accepted_hash: str | None
    remote_id: str | None
    accepted_properties: str | None  # JSON text
    status: str | None
    attempts: int | None
    source_hash: str | None


def rows_with_state(ctx: RunContext, target_name: str) -> Iterator[list[StateRow]]:
    """The 360 rows joined with the target's push state, keyset-paged by concord id.

    Only their narrow parts: ``with_documents`` reads the documents figures of those mapped.
    """
    c360, day, ps = t.customer360, t.customer360_daily, t.push_state
    page = max(ctx.config.batch_size, 100)
    after = ""
    while True:
        with ctx.store.engine.connect() as conn:
            rows = [
                StateRow(*r)
                for r in conn.execute(
                    select(
                        c360.c.concord_id,
                        c360.c.base_hash,
                        cast(day.c.data, Text),
                        ps.c.accepted_hash,
                        ps.c.remote_id,
                        cast(ps.c.accepted_properties, Text),
                        ps.c.status,
                        ps.c.attempts,
                        ps.c.source_hash,
                    )
                    .select_from(
                        c360.join(day, day.c.concord_id == c360.c.concord_id).outerjoin(
                            ps,
                            (ps.c.concord_id == c360.c.concord_id) & (ps.c.target == target_name),
                        )
                    )
                    .where(c360.c.concord_id > after)
                    .order_by(c360.c.concord_id)
                    .limit(page)
                )
            ]
        if not rows:
            return
        after = rows[-1].concord_id
        yield rows


def with_documents(
    ctx: RunContext, rows: Sequence[tuple[StateRow, dict[str, Any]]]
) -> Iterator[tuple[StateRow, dict[str, Any]]]:
    """Each (row, its parsed daily figures) with its whole 360 row, documents figures read now."""
    if not rows:
        return
    c360 = t.customer360
    with ctx.store.engine.connect() as conn:
        q = select(c360.c.concord_id, cast(c360.c.data, Text)).where(
            c360.c.concord_id.in_([row.concord_id for row, _ in rows])
        )
        bases: dict[str, str] = {gid: text for gid, text in conn.execute(q)}
    for row, daily in rows:
        base = bases.get(row.concord_id)
        if base is not None:  # else gone since the page was read
            yield row, whole(base, daily)


def planned(
    gid: str,
    mapped: Mapped,
    row: StateRow,
    fingerprint: str,
    *,
    forget_state: bool = False,
    revive: dict[str, Any] | None = None,
) -> PlannedUpsert:
    """The upsert of one mapped customer, against what the push state says the target holds.

    ``forget_state`` plans it as a create whatever the push state says (a resync found the
    record missing in the CRM). ``revive`` are the properties that undo a retirement mark
    (``revive_properties``): sent with a customer that came back, left out of its hash, so the
    next night finds it unchanged.
    """
    status = row.status
    known = status != "superseded" and not forget_state
    properties = mapped.properties
    clear: tuple[str, ...] = ()
    if revive and status == RETIRED:
        properties, clear = {**properties, **revive}, tuple(revive)
    return PlannedUpsert(
        key=gid,
        object_type=mapped.object_type,
        properties=properties,
        hash=content_hash(mapped.object_type, mapped.properties),
        remote_id=row.remote_id if known else None,
        previous=_loads(row.accepted_properties) if known else None,
        prior_hash=row.accepted_hash if known else None,
        prior_status=status if known else None,
        prior_attempts=row.attempts or 0,
        source_hash=fingerprint,
        name=mapped.name,
        source_ids=mapped.source_ids,
        clear=clear,
    )


RETIRED = "retired"
"""The push state of a customer the target holds marked or archived (``push/retire.py``)."""


def revive_properties(tcfg: TargetConfig) -> dict[str, Any]:
    """What clears a retirement mark when the customer comes back (``retire: mark``).

    The empty value clears the property in HubSpot, Salesforce and the REST target; an archived
    record (``retire: archive``) is recreated by the upsert and carries no mark.
    """
    return {tcfg.retire_property: ""} if tcfg.retire == "mark" else {}


def candidates(ctx: RunContext, target_name: str) -> Iterator[Candidate]:
    """Every customer whose outbound properties differ from what the target last accepted.

    Keyset-paged over the 360 table so memory stays flat however many customers there are. A row
    accepted from the same 360 data and mappings is skipped without validating or mapping it.
    """
    mappings = outbound_mappings(ctx, target_name)
    revive = revive_properties(ctx.config.targets[target_name])
    for rows in rows_with_state(ctx, target_name):
        moved: list[tuple[StateRow, dict[str, Any]]] = []
        fingerprints: dict[str, str] = {}
        for row in rows:
            daily = orjson.loads(row.daily)
            fingerprint = source_fingerprint(row.base_hash, daily, mappings)
            if row.status == "accepted" and row.source_hash == fingerprint:
                continue
            fingerprints[row.concord_id] = fingerprint
            moved.append((row, daily))
        for row, data in with_documents(ctx, moved):
            gid, fingerprint, status = row.concord_id, fingerprints[row.concord_id], row.status
            mapped = map_customer(gid, data, mappings, target_name)
            if isinstance(mapped, MapFailure):
                yield mapped
                continue
            h = content_hash(mapped.object_type, mapped.properties)
            if row.accepted_hash == h and status != "superseded":
                if status in ("accepted", "rejected"):
                    yield Refresh(gid, fingerprint)
                continue
            yield planned(gid, mapped, row, fingerprint, revive=revive)


def _loads(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    loaded = orjson.loads(text)
    return loaded if isinstance(loaded, dict) else None


def unchanged_count(ctx: RunContext, planned: int, failed: int) -> int:
    """Customers with a 360 row that the push neither plans to send nor failed to map."""
    with ctx.store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t.customer360)).scalar_one()
    return int(total) - planned - failed
