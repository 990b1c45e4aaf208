"""Map stage: pending raw records through the compiled mapping into canonical rows.

A record that fails the mapping or the canonical model becomes a reject with the field, reason,
mapping file and line, and the payload, and a canonical row it had from an earlier payload is
quarantined (``concord.store.quarantine``); a record that maps closes its earlier rejects. Raw
records are marked mapped (with the mapping's fingerprint) in the same transaction as their
canonical rows, so a crash repeats nothing; records mapped by an older mapping are replayed first
(``concord.pipeline.replay``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from enum import Enum
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from concord.errors import RecordRejected
from concord.hashing import digest, json_digest
from concord.mapping import Mapping
from concord.model import ENTITY_MODELS, CanonicalModel
from concord.pipeline.context import RunContext, record_stage
from concord.pipeline.replay import mapping_fingerprint, replay_all, replay_changed
from concord.pipeline.reports import MapReport
from concord.pipeline.rows import FastDumper
from concord.store import Reject, Store
from concord.store import tables as t
from concord.store.quarantine import quarantine_rows, release
from concord.utc import utcnow


def canonical_row(
    entity: str, model: CanonicalModel, run_id: str, mapping_fp: str | None = None
) -> dict[str, Any]:
    """The canonical table row of one mapped record (its JSON, hash and query columns)."""
    table = t.CANONICAL_TABLES[entity]
    data = model.model_dump(mode="json")
    row: dict[str, Any] = {
        "source": data["ref"]["system"],
        "source_id": data["ref"]["id"],
        "data": data,
        "hash": json_digest(data),
        "updated_at": getattr(model, "updated_at", None),
        "run_id": run_id,
        "mapping_fp": mapping_fp,
        "state": getattr(getattr(model, "record_state", None), "value", None),  # issue 14
    }
    for col in table.columns.keys():
        if col in row:
            continue
        if col == "email":
            emails = getattr(model, "emails", [])
            row[col] = emails[0] if emails else None
        else:
            value = getattr(model, col)
            row[col] = (
                value.value
                if hasattr(value, "value") and not isinstance(value, (str, int))
                else value
            )
    return row


def _describe_validation(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return loc, f"{err['msg']} (got {str(err.get('input'))[:80]!r})"


class CanonicalRows:
    """Rows of one canonical table in the driver's form, built from a record's values.

    ``values`` are the record as ``model_dump()`` holds it (from ``FastDumper`` or, for the
    records it leaves to pydantic, from the model) and ``text`` its JSON (what
    ``model_dump(mode="json")`` writes); the row stores the JSON, its digest as the row's
    ``hash``, and the typed query columns.
    """

    def __init__(self, store: Store, entity: str) -> None:
        self.table = t.CANONICAL_TABLES[entity]
        head = ["source", "source_id"]
        tail = ["data", "hash", "updated_at", "run_id", "mapping_fp"]
        typed = [c for c in self.table.columns.keys() if c not in (*head, *tail)]
        self.columns = [*head, *typed, *tail]
        procs = store.driver_processors(self.table, self.columns)
        # Per typed column, how its value is read: 0 as is (an enum by its value), 1 through the
        # driver processor, 2 the first e-mail, 3 the record state (archived / deleted, issue 14).
        plan: list[tuple[str, int, Callable[[Any], Any] | None]] = []
        for i, name in enumerate(typed):
            proc = procs[2 + i]
            if name == "email":
                plan.append(("emails", 2, None))
            elif name == "state":
                plan.append(("record_state", 3, None))
            else:
                plan.append((name, 0 if proc is None else 1, proc))
        self._plan = plan
        self._updated_proc = procs[len(head) + len(typed) + 2]

    def row(
        self, values: dict[str, Any], text: bytes, run_id: str, mapping_fp: str | None
    ) -> tuple[Any, ...]:
        """One row, in ``columns`` order."""
        ref = values["ref"]
        row: list[Any] = [ref["system"], ref["id"]]
        for key, kind, proc in self._plan:
            value = values.get(key)
            if value is None:
                row.append(None)
            elif kind == 1:
                row.append(proc(value))  # type: ignore[misc]
            elif kind == 2:
                row.append(value[0] if value else None)
            else:
                row.append(value.value if isinstance(value, Enum) else value)
        updated = values.get("updated_at")
        if updated is not None and self._updated_proc is not None:
            updated = self._updated_proc(updated)
        row += [text.decode(), digest(text), updated, run_id, mapping_fp]
        return tuple(row)


def map_entity(
    ctx: RunContext, source_name: str, entity: str, *, replay: Literal["changed", "all"] = "changed"
) -> MapReport:
    """Map pending raw records to canonical rows; failures become rejects with the payload.

    First the staged records mapped by another mapping are made pending again (``replay``:
    ``"all"`` replays every staged record, as ``concord remap`` asks). Each record's mapping
    output becomes its row through ``FastDumper`` when that is sure of it, else through the
    pydantic model (whose error is the reject's detail); rows are written through the driver.
    """
    started = utcnow()
    mapping = ctx.mappings[(source_name, entity)]
    ecfg = ctx.config.sources[source_name].entities[entity]
    model_cls = ENTITY_MODELS[mapping.entity]
    dumper = FastDumper.for_model(model_cls)
    builder = CanonicalRows(ctx.store, mapping.entity)
    table = builder.table
    fingerprint = mapping_fingerprint(mapping)
    report = MapReport(canonical_entity=mapping.entity, mapping_fp=fingerprint, replay=replay)
    if replay == "all":
        report.replayed = replay_all(ctx.store, source_name, entity)
    else:
        report.replayed = replay_changed(ctx.store, source_name, entity, fingerprint)
    # Nothing to close or release when the entity has no open reject and nothing quarantined
    # (a first night): rows this run rejects or quarantines belong to other records.
    open_work = ctx.store.has_open_work(source_name, entity, table.name)
    # PostgreSQL plans the batch reads and mark_mapped by key only with fresh statistics
    ctx.store.refresh_statistics([t.raw_state, t.raw_records])
    drift: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    run_id = ctx.run_id
    canonical_id = ecfg.canonical_id
    apply = mapping.apply
    for batch in ctx.store.pending_batches(source_name, entity, ctx.config.batch_size):
        rows: list[tuple[Any, ...]] = []
        rejects: list[Reject] = []
        ok_ids: list[str] = []
        for sid, payload, _h in batch:
            record = orjson.loads(payload)
            if not isinstance(record, dict):
                rejects.append(
                    _reject(
                        source_name,
                        entity,
                        sid,
                        None,
                        "payload is not a JSON object",
                        mapping,
                        payload,
                    )
                )
                continue
            missing.update(mapping.missing_paths(record))
            try:
                out = apply(record)
                out.pop("id", None)
                out["ref"] = {"system": source_name, "entity": entity, "id": canonical_id(sid)}
                fast = dumper.validate(out) if dumper is not None else None
                if fast is not None and dumper is not None:
                    values, text = fast, dumper.to_json(fast)
                else:
                    model = model_cls.model_validate(out)
                    values = model.model_dump()
                    text = model.__pydantic_serializer__.to_json(model)
            except RecordRejected as exc:
                rejects.append(
                    _reject(source_name, entity, sid, exc.field, exc.reason, mapping, payload)
                )
                continue
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
                # pydantic's ValidationError is a ValueError: the model refused the output.
                if isinstance(exc, ValidationError):
                    fld, reason = _describe_validation(exc)
                else:
                    fld, reason = None, f"unexpected payload shape: {type(exc).__name__}: {exc}"
                rejects.append(_reject(source_name, entity, sid, fld, reason, mapping, payload))
                continue
            drift.update(mapping.unmapped_paths(record))
            rows.append(builder.row(values, text, run_id, fingerprint))
            ok_ids.append(sid)
        report.records += len(batch)
        bad_ids = [canonical_id(r.source_id) for r in rejects if r.source_id is not None]
        with ctx.store.begin() as conn:
            ctx.store.upsert_rows(conn, table, builder.columns, rows, ["source", "source_id"])
            if open_work:
                release(
                    conn, table, source=source_name, source_ids=[canonical_id(s) for s in ok_ids]
                )
                ctx.store.resolve_rejects(
                    conn,
                    stage="map",
                    source=source_name,
                    entity=entity,
                    source_ids=ok_ids,
                    run_id=run_id,
                )
            report.quarantined += quarantine_rows(
                ctx.store,
                conn,
                table,
                source=source_name,
                entity=entity,
                source_ids=bad_ids,
                run_id=run_id,
            )
            ctx.store.add_rejects(conn, rejects, run_id=run_id)
            ctx.store.mark_mapped(
                conn, source_name, entity, [(s, h) for s, _p, h in batch], fingerprint
            )
        report.mapped += len(rows)
        report.rejected += len(rejects)
        ctx.emit("mapped", source=source_name, entity=entity, records=len(batch))
    report.unmapped_fields = dict(drift.most_common(20))
    report.missing_fields = dict(missing.most_common(20))
    record_stage(ctx, "map", f"{source_name}/{entity}", started, report)
    return report


def _reject(
    source: str,
    entity: str,
    sid: str,
    fld: str | None,
    reason: str,
    mapping: Mapping,
    payload: bytes,
) -> Reject:
    return Reject(
        stage="map",
        source=source,
        entity=entity,
        source_id=sid,
        field=fld,
        reason=reason,
        location=mapping.location(fld),
        payload=payload,
    )
