"""Generic REST target: push batches to any JSON API whose batch shape is described in config.

The request is ``<method> <path>`` with the records either bare (a JSON array) or under
``records_key``; each record is its properties plus the concord id under ``key_field``. The answer
is read as per-record results when ``results_path`` names them (matched back by
``result_key_field``; a record is refused when ``result_ok_field`` is false or
``result_error_field`` is set), or, with no ``results_path``, any 2xx accepts the whole batch. A
batch refused whole (400/413/422) is split in halves until the bad records stand alone. Merged
customers are marked (``superseded_field`` set to the survivor in the same batch shape) or
deleted one by one (``delete_path`` with ``{key}`` and ``{remote_id}`` placeholders). With
``list_path`` set, records are read back for a resync: ``GET <list_path>`` with the wanted keys
in ``list_ids_param`` (or, without it, every page), results under ``list_results_path``, the
next page's cursor in ``list_next_field`` sent back as ``list_cursor_param``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from concord.contracts import (
    ObjectKind,
    PushOutcome,
    PushRecord,
    RemoteRecord,
    Supersession,
    TargetConfig,
)
from concord.errors import PushError
from connectors.crm.base import (
    CrmAuth,
    CrmClient,
    bisect,
    chunks,
    error_body,
    is_call_failure,
    jsonable,
)
from connectors.crm.base import parse_settings as _parse
from connectors.http import HttpSettings, NoAuth

MAX_BATCH = 1000


class RestTargetSettings(BaseModel):
    """The generic REST target section: endpoint, batch shape, result fields, merge mode."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://")
    auth: CrmAuth = Field(default_factory=NoAuth)
    http: HttpSettings = Field(default_factory=HttpSettings)
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    path: str = "/customers/batch"
    person_path: str | None = Field(default=None, description="batch path for persons")
    records_key: str | None = Field(default="records", description="None: a bare JSON array")
    key_field: str = "id"
    results_path: str | None = Field(default="results", description="None: 2xx accepts all")
    result_key_field: str = "id"
    result_ok_field: str | None = "ok"
    result_error_field: str = "error"
    result_remote_id_field: str | None = None
    merge_mode: Literal["mark", "delete"] = "mark"
    superseded_field: str = "superseded_by"
    delete_path: str = "/customers/{key}"
    list_path: str | None = Field(default=None, description="GET listing records (resync)")
    person_list_path: str | None = None
    list_ids_param: str | None = Field(default="ids", description="None: read every page")
    list_results_path: str = "results"
    list_next_field: str | None = "next"
    list_cursor_param: str = "cursor"


def parse_settings(config: TargetConfig) -> RestTargetSettings:
    """The section's settings; errors name ``targets.<name>.<key>``."""
    return _parse(RestTargetSettings, config)


class RestTarget:
    """A ``Target`` for a JSON batch endpoint described entirely by settings."""

    max_batch = MAX_BATCH
    default_batch = 100

    def __init__(self, name: str, settings: RestTargetSettings, batch: int = 100) -> None:
        self.name = name
        self.settings = settings
        self.batch = min(batch, MAX_BATCH)
        self.client = CrmClient(name, settings.base_url, settings.auth, settings.http)

    @classmethod
    def validate(cls, config: TargetConfig) -> None:
        """Check the section's settings."""
        parse_settings(config)

    @classmethod
    def from_config(cls, config: TargetConfig) -> RestTarget:
        """Build from the config section; credentials are resolved at the first call."""
        return cls(config.name, parse_settings(config), _batch(config))

    @classmethod
    def merge_action(cls, config: TargetConfig) -> str:
        """``mark`` (superseded field in a batch) or ``delete``, per ``merge_mode``."""
        return parse_settings(config).merge_mode

    @classmethod
    def merge_calls(cls, config: TargetConfig, merges: int) -> int:
        """Marks go in batches like upserts; deletes are one call each."""
        if parse_settings(config).merge_mode == "delete":
            return merges
        return math.ceil(merges / _batch(config))

    @property
    def calls(self) -> int:
        """API calls made so far."""
        return self.client.calls

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()

    def push(self, records: Sequence[PushRecord]) -> list[PushOutcome]:
        """Send batches in the configured shape; one outcome per record, in order."""
        out: dict[str, PushOutcome] = {}
        by_kind: dict[str, list[PushRecord]] = {}
        for r in records:
            by_kind.setdefault(r.object_type, []).append(r)
        for kind, group in by_kind.items():
            path = (self.settings.person_path if kind == "person" else None) or self.settings.path

            def send(batch: Sequence[PushRecord], p: str = path) -> list[PushOutcome]:
                return self._send(p, [(r.key, r.properties) for r in batch])

            for chunk in chunks(group, self.batch):
                for outcome in bisect(chunk, send, _describe):
                    out[outcome.key] = outcome
        return [
            out.get(r.key) or PushOutcome(r.key, ok=False, error="missing in the answer")
            for r in records
        ]

    def _send(self, path: str, rows: Sequence[tuple[str, dict[str, Any]]]) -> list[PushOutcome]:
        s = self.settings
        items = [{**jsonable(props), s.key_field: key} for key, props in rows]
        body: Any = {s.records_key: items} if s.records_key else items
        resp = self.client.request(s.method, path, json=body)
        if s.results_path is None:
            return [PushOutcome(key, ok=True) for key, _ in rows]
        results = _dig(resp.data, s.results_path)
        by_key: dict[str, PushOutcome] = {}
        for res in results if isinstance(results, list) else []:
            if not isinstance(res, dict) or res.get(s.result_key_field) is None:
                continue
            key = str(res[s.result_key_field])
            error = res.get(s.result_error_field)
            ok = not error and (s.result_ok_field is None or bool(res.get(s.result_ok_field)))
            remote = res.get(s.result_remote_id_field) if s.result_remote_id_field else None
            by_key[key] = PushOutcome(
                key,
                ok=ok,
                remote_id=str(remote) if remote is not None else None,
                error=None if ok else str(error or "refused"),
            )
        return [
            by_key.get(key) or PushOutcome(key, ok=False, error="missing in the answer")
            for key, _ in rows
        ]

    def read(
        self, object_type: ObjectKind, keys: Sequence[str], properties: Sequence[str]
    ) -> list[RemoteRecord]:
        """The records the API lists for ``keys`` (``list_path``; every page without an id filter).

        ``properties`` are whatever the API returns: a list endpoint has no field selection.
        """
        s = self.settings
        path = (s.person_list_path if object_type == "person" else None) or s.list_path
        if path is None:
            raise PushError(
                "cannot read records back: set list_path (or push with --full)", target=self.name
            )
        wanted = set(keys)
        pages = (
            [{s.list_ids_param: ",".join(chunk)} for chunk in chunks(list(keys), self.batch)]
            if s.list_ids_param
            else [{}]
        )
        found: dict[str, RemoteRecord] = {}
        for params in pages:
            for item in self._list(path, dict(params)):
                key = item.get(s.key_field)
                if key is None or str(key) not in wanted:
                    continue
                remote = item.get(s.result_remote_id_field) if s.result_remote_id_field else None
                found[str(key)] = RemoteRecord(
                    str(key), object_type, None if remote is None else str(remote), dict(item)
                )
        return list(found.values())

    def _list(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        s = self.settings
        while True:
            data = self.client.request("GET", path, params=params).data
            for item in _dig(data, s.list_results_path) or []:
                if isinstance(item, dict):
                    yield item
            cursor = _dig(data, s.list_next_field) if s.list_next_field else None
            if not cursor:
                return
            params = {**params, s.list_cursor_param: str(cursor)}

    def supersede(self, items: Sequence[Supersession]) -> list[PushOutcome]:
        """Mark each absorbed record superseded (in batches) or delete it, per ``merge_mode``."""
        s = self.settings
        if s.merge_mode == "mark":
            out: list[PushOutcome] = []
            by_kind: dict[str, list[Supersession]] = {}
            for x in items:
                by_kind.setdefault(x.object_type, []).append(x)
            for kind, group in by_kind.items():
                path = (s.person_path if kind == "person" else None) or s.path
                for i in range(0, len(group), self.batch):
                    marks = [
                        (x.absorbed, {s.superseded_field: x.survivor})
                        for x in group[i : i + self.batch]
                    ]
                    out.extend(self._send(path, marks))
            return out
        done: list[PushOutcome] = []
        for x in items:
            path = s.delete_path.format(key=x.absorbed, remote_id=x.absorbed_remote_id or "")
            try:
                self.client.request("DELETE", path, parse_json=False)
            except PushError as exc:
                if exc.status == 404:  # already gone: the merge is done
                    done.append(PushOutcome(x.absorbed, ok=True))
                    continue
                if is_call_failure(exc):
                    raise
                done.append(PushOutcome(x.absorbed, ok=False, error=_describe(exc)))
                continue
            done.append(PushOutcome(x.absorbed, ok=True))
        return done


def _batch(config: TargetConfig) -> int:
    return min(config.explicit_batch_size or RestTarget.default_batch, MAX_BATCH)


def _dig(data: Any, path: str) -> Any:
    for step in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(step)
    return data


def _describe(exc: PushError) -> str:
    body = error_body(exc)
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "title"):
            if isinstance(body.get(key), str):
                return f"HTTP {exc.status} {body[key][:300]}"
    return exc.message
