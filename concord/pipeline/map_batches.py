"""A batch of staged records through the mapping into canonical rows: here or in worker processes.

What the map stage spends is per-record Python (JSON parse, the compiled mapping, validation,
canonical JSON, typed columns, drift checks), all under one interpreter lock. ``BatchMapper``
does that work for one batch and returns the rows, rejects and drift counts; the stage writes
them (``concord.pipeline.map``). A big entity's batches go to ``MapPool``'s worker processes
(``map_workers``), while the stage's own process reads the next batches and writes the results:
still each batch in one transaction with its raw records marked mapped, in the order read, so a
crash loses or repeats nothing more than before. A worker compiles the mapping from its file and
refuses to map when that no longer gives the run's fingerprint (the file changed mid-run).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import create_engine
from sqlalchemy.engine import Dialect

from concord.errors import MappingError, RecordRejected
from concord.hashing import digest
from concord.mapping import Mapping, load_mapping
from concord.model import ENTITY_MODELS
from concord.pipeline.replay import mapping_fingerprint
from concord.pipeline.rows import FastDumper
from concord.store import Reject, driver_processors
from concord.store import tables as t

Batch = Sequence[tuple[str, bytes, str]]
"""Staged records as ``pending_batches`` reads them: (source id, payload, hash)."""

MIN_RECORDS_FOR_WORKERS = 20_000
"""Pending records from which an entity's batches go to the worker processes: below it, starting
them (each imports concord and compiles the mapping, about a second) costs more than it saves."""

_DIALECT_URLS = {"sqlite": "sqlite://", "postgresql": "postgresql+psycopg://"}


def dialect_named(name: str) -> Dialect:
    """The SQLAlchemy dialect of a store kind, without connecting to anything."""
    return create_engine(_DIALECT_URLS[name]).dialect


class CanonicalRows:
    """Rows of one canonical table in the driver's form, built from a record's values.

    ``values`` are the record as ``model_dump()`` holds it (from ``FastDumper`` or, for the
    records it leaves to pydantic, from the model) and ``text`` its JSON (what
    ``model_dump(mode="json")`` writes); the row stores the JSON, its digest as the row's
    ``hash``, and the typed query columns.
    """

    def __init__(self, dialect: Dialect, entity: str) -> None:
        self.table = t.CANONICAL_TABLES[entity]
        head = ["source", "source_id"]
        tail = ["data", "hash", "updated_at", "run_id", "mapping_fp"]
        typed = [c for c in self.table.columns.keys() if c not in (*head, *tail)]
        self.columns = [*head, *typed, *tail]
        procs = driver_processors(dialect, self.table, self.columns)
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


@dataclass(slots=True)
class BatchResult:
    """One batch mapped: its rows (``CanonicalRows.columns`` order), rejects, drift counts."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ok_ids: list[str] = field(default_factory=list)
    drift: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class BatchJob:
    """What a worker process needs to map an entity's batches exactly as the stage would."""

    source: str
    entity: str
    mapping_path: str
    fingerprint: str
    id_prefix: str
    dialect: str
    run_id: str


def _describe_validation(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return loc, f"{err['msg']} (got {str(err.get('input'))[:80]!r})"


class BatchMapper:
    """Maps batches of one source entity into rows, rejects and drift counts.

    Each record's output becomes its row through ``FastDumper`` when that is sure of it, else
    through the pydantic model (whose error is the reject's detail); a record that fails
    becomes a reject with its payload.
    """

    def __init__(
        self,
        mapping: Mapping,
        source: str,
        entity: str,
        id_prefix: str,
        builder: CanonicalRows,
        fingerprint: str,
        run_id: str,
    ) -> None:
        self.mapping = mapping
        self.source = source
        self.entity = entity
        self.id_prefix = id_prefix
        self.builder = builder
        self.fingerprint = fingerprint
        self.run_id = run_id
        self.model = ENTITY_MODELS[mapping.entity]
        self.dumper = FastDumper.for_model(self.model)

    @classmethod
    def for_job(cls, job: BatchJob) -> BatchMapper:
        """A worker's mapper: the mapping compiled from its file, checked against the run's."""
        mapping = load_mapping(Path(job.mapping_path))
        if mapping_fingerprint(mapping) != job.fingerprint:
            raise MappingError(
                "the mapping file changed while the run was mapping with it; run again",
                file=job.mapping_path,
            )
        builder = CanonicalRows(dialect_named(job.dialect), mapping.entity)
        return cls(
            mapping, job.source, job.entity, job.id_prefix, builder, job.fingerprint, job.run_id
        )

    def map(self, batch: Batch) -> BatchResult:
        """The batch's rows and rejects, in the order of the batch."""
        out = BatchResult()
        mapping, model_cls, dumper = self.mapping, self.model, self.dumper
        apply, prefix, source, entity = mapping.apply, self.id_prefix, self.source, self.entity
        for sid, payload, _h in batch:
            record = orjson.loads(payload)
            if not isinstance(record, dict):
                out.rejects.append(self._reject(sid, None, "payload is not a JSON object", payload))
                continue
            out.missing.update(mapping.missing_paths(record))
            try:
                mapped = apply(record)
                mapped.pop("id", None)
                mapped["ref"] = {"system": source, "entity": entity, "id": f"{prefix}{sid}"}
                fast = dumper.validate(mapped) if dumper is not None else None
                if fast is not None and dumper is not None:
                    values, text = fast, dumper.to_json(fast)
                else:
                    model = model_cls.model_validate(mapped)
                    values = model.model_dump()
                    text = model.__pydantic_serializer__.to_json(model)
            except RecordRejected as exc:
                out.rejects.append(self._reject(sid, exc.field, exc.reason, payload))
                continue
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
                # pydantic's ValidationError is a ValueError: the model refused the output.
                if isinstance(exc, ValidationError):
                    fld, reason = _describe_validation(exc)
                else:
                    fld, reason = None, f"unexpected payload shape: {type(exc).__name__}: {exc}"
                out.rejects.append(self._reject(sid, fld, reason, payload))
                continue
            out.drift.update(mapping.unmapped_paths(record))
            out.rows.append(self.builder.row(values, text, self.run_id, self.fingerprint))
            out.ok_ids.append(sid)
        return out

    def _reject(self, sid: str, fld: str | None, reason: str, payload: bytes) -> Reject:
        return Reject(
            stage="map",
            source=self.source,
            entity=self.entity,
            source_id=sid,
            field=fld,
            reason=reason,
            location=self.mapping.location(fld),
            payload=payload,
        )


_MAPPERS: dict[BatchJob, BatchMapper] = {}
"""A worker process's mappers, one per job (entity of a run), built on its first batch."""


def _map_in_worker(job: BatchJob, batch: Batch) -> BatchResult:
    mapper = _MAPPERS.get(job)
    if mapper is None:
        mapper = _MAPPERS[job] = BatchMapper.for_job(job)
    return mapper.map(batch)


class MapPool:
    """Worker processes for the map stage, started on first use and stopped on exit.

    ``workers`` 0 maps every batch in the stage's own process. Workers are spawned (not forked:
    the run has threads, the lock's heartbeat among them, and a store connection).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> MapPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (waiting for none of the batches still queued)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def mapped(
        self, job: BatchJob, batches: Iterable[Batch]
    ) -> Iterator[tuple[Batch, BatchResult]]:
        """Each batch with its result, in order; up to ``workers + 1`` batches in flight."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        executor = self._executor
        flight: deque[tuple[Batch, Future[BatchResult]]] = deque()
        try:
            for batch in batches:
                flight.append((batch, executor.submit(_map_in_worker, job, batch)))
                if len(flight) > self.workers:
                    done, future = flight.popleft()
                    yield done, future.result()
            while flight:
                done, future = flight.popleft()
                yield done, future.result()
        finally:
            for _batch, future in flight:
                future.cancel()
