"""Declarative REST source: an ERP's REST API described in YAML, pulled page by page.

The source section of ``concord.yaml`` gives the base URL, auth style, paginator, where records
sit in a response, how the incremental window is sent and how values are decoded; each entity
gives its path and may override any of these. A ``profile`` (``connectors/erp/profiles/``) gives
the defaults for a known ERP (Tryton, Business Central), so the user's section holds only the
URL, the secret reference and the entities. Pages are parsed with orjson and handed on one at a
time (memory stays flat), each with a checkpoint holding the window and where the next page
starts (an offset, cursor, link or range, or with seek paging the (cursor, id) of the last record
seen), never headers. ``count`` asks the ERP how many records match a window (an id listing or a
count endpoint), so the extract stage can compare with what it staged. Requests go through the
HTTP kit (``connectors.http``): retries, rate limit, size cap, TLS, and only the base URL's
origin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from concord.contracts import (
    Checkpoint,
    Exclusion,
    Page,
    SourceConfig,
    Trigger,
    Window,
    WindowCount,
)
from concord.errors import ConfigError, SourceError
from concord.secrets import refuse_inline_headers, refuse_inline_params
from concord.utc import parse_time
from connectors.erp import tryton
from connectors.erp.incremental import IncrementalConfig, SeekKey, TrytonDomainWindow
from connectors.erp.pagination import PageRequest, PaginatorConfig, SinglePage, json_path
from connectors.erp.profile import apply_profile
from connectors.http import AuthConfig, HttpClient, HttpSettings, NoAuth, Side

Decoder = Callable[[Any], Any]
BodyHook = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Decoding:
    """A source dialect: a fast rewrite of the raw body, then a per-record decoder.

    The decoder runs only on pages whose rewritten body still contains ``marker``.
    """

    body_hook: BodyHook
    record: Decoder
    marker: bytes


DECODERS: dict[str, Decoding] = {
    "tryton": Decoding(tryton.rewrite_tags, tryton.decode_record, tryton.TAG),
}


class ExcludeFrom(BaseModel):
    """Leave out records whose ``path`` value is one of the ``field`` values of another resource.

    The Tryton profile leaves out the company's own party: ``path: id``, ``lookup:
    rest/model/company.company`` with ``f: [party]``, ``field: party``. The lookup is one GET
    (no paging: meant for small lists) made once per pull.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    lookup: str
    field: str
    params: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""

    _no_inline_params = field_validator("params")(refuse_inline_params)


class IdsCount(BaseModel):
    """Count a window by listing its ids.

    The entity's own request (same filter, same paging, seek where the window style seeks) with
    ``params`` overriding its fields, ``page_size`` ids a page. The Tryton profile's: ``{style:
    ids, params: {f: [id, last_modified_at]}}``. The extract stage then knows which ids the ERP
    holds, not only how many.
    """

    model_config = ConfigDict(extra="forbid")

    style: Literal["ids"]
    params: dict[str, Any] = Field(default_factory=dict)
    page_size: int = Field(default=1000, ge=1, le=100_000)
    id_field: str = "id"


class EndpointCount(BaseModel):
    """Count a window with one GET that answers a number.

    ``path`` (default: the entity's path plus ``suffix``, e.g. OData's ``/$count``) with the
    window's filter parameters; the number sits at ``count_path`` ("" = the body is the number).
    """

    model_config = ConfigDict(extra="forbid")

    style: Literal["endpoint"]
    path: str | None = None
    suffix: str = ""
    count_path: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    drop: list[str] = Field(
        default_factory=list, description="entity parameters a count does not take ($expand)"
    )


CountConfig = Annotated[IdsCount | EndpointCount, Field(discriminator="style")]


class RevisitSettings(BaseModel):
    """Records re-read on every run whatever their cursor: ``params`` narrow the entity's request.

    With the ``tryton_domain`` style a ``d`` list is appended to the entity's own domain (the
    profile's invoices: ``[[state, "=", posted]]``, posted and not paid); otherwise the params
    are added to the entity's. No time window is sent.
    """

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)


class TriggerRule(BaseModel):
    """A new or changed record re-reads its parent.

    ``parent`` is an entity name, or the profile resource of one (``account.invoice``); the
    parent's id is at ``path`` of the record.
    """

    model_config = ConfigDict(extra="forbid")

    parent: str
    path: str


class RestEntitySettings(BaseModel):
    """Per-entity keys; anything left out comes from the source section."""

    model_config = ConfigDict(extra="forbid")

    path: str
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    records_path: str | None = None
    paginator: PaginatorConfig | None = None
    page_size: int | None = Field(default=None, ge=1, le=100_000)
    incremental: IncrementalConfig | None = None
    full_refresh_only: bool = Field(
        default=False, description="the API cannot filter this entity by time: send no window"
    )
    exclude_from: list[ExcludeFrom] = Field(default_factory=list)
    count: CountConfig | None = None
    revisit: RevisitSettings | None = None
    triggers: list[TriggerRule] = Field(default_factory=list)
    read_path: str = Field(
        default="{path}/{id}", description="one record by id, where the API has no id filter"
    )
    resource: str | None = Field(default=None, description="the profile resource it came from")

    _no_inline_headers = field_validator("headers")(refuse_inline_headers)
    _no_inline_params = field_validator("params")(refuse_inline_params)


class RestSourceSettings(BaseModel):
    """The source section (after its profile, if any, was merged underneath)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://")
    auth: AuthConfig = Field(default_factory=NoAuth)
    http: HttpSettings = Field(default_factory=HttpSettings)
    paginator: PaginatorConfig = Field(default_factory=SinglePage)
    page_size: int = Field(default=100, ge=1, le=100_000)
    records_path: str | None = "data"
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    incremental: IncrementalConfig | None = None
    decode: Literal["none", "tryton"] = "none"
    max_pages: int | None = Field(
        default=None, ge=1, description="runaway guard: fail after this many pages of one entity"
    )
    count: CountConfig | None = None

    _no_inline_headers = field_validator("headers")(refuse_inline_headers)
    _no_inline_params = field_validator("params")(refuse_inline_params)


class RestSource:
    """A ``Source`` over a REST API configured in YAML."""

    def __init__(
        self, name: str, settings: RestSourceSettings, entities: dict[str, RestEntitySettings]
    ) -> None:
        self.name = name
        self.settings = settings
        self.entities = entities
        self.decoding: Decoding | None = DECODERS.get(settings.decode)
        self.client = HttpClient(
            Side.source(name), settings.base_url, auth=settings.auth, settings=settings.http
        )

    @classmethod
    def parse_settings(
        cls, config: SourceConfig
    ) -> tuple[RestSourceSettings, dict[str, RestEntitySettings]]:
        """The section's settings, its profile merged first; errors name the key."""
        raw, raw_entities = apply_profile(
            config.name,
            config.settings,
            {name: ec.settings for name, ec in config.entities.items()},
        )
        try:
            settings = RestSourceSettings.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError.from_validation(
                exc, prefix=("sources", config.name), model=RestSourceSettings
            ) from None
        entities: dict[str, RestEntitySettings] = {}
        for name, ent in raw_entities.items():
            resource = config.entities[name].settings.get("resource")
            if resource is not None and "resource" not in ent:
                ent = {**ent, "resource": resource}
            try:
                entities[name] = RestEntitySettings.model_validate(ent)
            except ValidationError as exc:
                prefix = ("sources", config.name, "entities", name)
                raise ConfigError.from_validation(
                    exc, prefix=prefix, model=RestEntitySettings
                ) from None
        return settings, entities

    @classmethod
    def validate(cls, config: SourceConfig) -> None:
        """Check the section (and its profile) without building a client."""
        cls.parse_settings(config)

    @classmethod
    def from_config(cls, config: SourceConfig) -> RestSource:
        """Build from the config section, merging its profile first; errors name the key."""
        return cls(config.name, *cls.parse_settings(config))

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()

    def _paginator(self, entity: str) -> PaginatorConfig:
        return self.entities[entity].paginator or self.settings.paginator

    def _page_size(self, entity: str) -> int:
        return self.entities[entity].page_size or self.settings.page_size

    def _incremental(self, entity: str) -> IncrementalConfig | None:
        return self.entities[entity].incremental or self.settings.incremental

    def seeks(self, entity: str) -> bool:
        """Whether ``entity`` is paged by keyset (its window style seeks, it has a window)."""
        inc = self._incremental(entity)
        return inc is not None and inc.seeks and not self.entities[entity].full_refresh_only

    def first_request(
        self,
        entity: str,
        window: Window,
        after: SeekKey | None = None,
        *,
        params: dict[str, Any] | None = None,
        page_size: int | None = None,
    ) -> PageRequest:
        """The request for the first page of ``entity`` in ``window`` (with its sort order).

        ``after`` adds the seek clause (records strictly after that (cursor, id)); ``params``
        override the entity's parameters (an id listing asks for fewer fields).
        """
        ent = self.entities[entity]
        inc = self._incremental(entity)
        merged: dict[str, Any] = {**self.settings.params, **ent.params, **(params or {})}
        if inc is not None:
            win = Window(None, None) if ent.full_refresh_only else window
            merged = inc.apply(merged, win, after)
        headers = {**self.settings.headers, **ent.headers}
        return self._paginator(entity).first(
            PageRequest(ent.path, merged, headers), page_size or self._page_size(entity)
        )

    def exclusions(self, entity: str) -> list[Exclusion]:
        """The entity's ``exclude_from`` rules with their values read from the ERP."""
        if entity not in self.entities:
            raise SourceError(f"entity '{entity}' is not configured", source=self.name)
        out: list[Exclusion] = []
        for rule in self.entities[entity].exclude_from:
            resp = self.client.request(
                "GET",
                rule.lookup,
                params={**self.settings.params, **rule.params} or None,
                headers=self.settings.headers or None,
                body_hook=self.decoding.body_hook if self.decoding else None,
            )
            records = json_path(resp.data, self.settings.records_path)
            if not isinstance(records, list):
                raise SourceError(
                    f"expected a list of records from '{rule.lookup}' (exclude_from)",
                    source=self.name,
                    url=self.client.url(rule.lookup),
                )
            values: set[str] = set()
            for record in records:
                record = self.decoding.record(record) if self.decoding else record
                value = record.get(rule.field) if isinstance(record, dict) else None
                if isinstance(value, dict):
                    value = value.get("id")
                if value not in (None, ""):
                    values.add(str(value))
            if values:
                reason = rule.reason or f"{rule.path} in {rule.lookup} {rule.field}"
                out.append(Exclusion(path=rule.path, values=sorted(values), reason=reason))
        return out

    def extract(self, entity: str, window: Window, resume: Checkpoint | None) -> Iterator[Page]:
        """Yield pages of ``entity`` in ``window`` from ``resume`` (a checkpoint) or the start."""
        if entity not in self.entities:
            raise SourceError(f"entity '{entity}' is not configured", source=self.name)
        yield from self._pages(entity, window, resume)

    def _pages(
        self,
        entity: str,
        window: Window,
        resume: Checkpoint | None,
        *,
        params: dict[str, Any] | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """The pages of one window: seek paging where the window style seeks, else the paginator's.

        ``params``/``page_size`` override the entity's (id listings).
        """
        ent = self.entities[entity]
        paginator = self._paginator(entity)
        page_size = page_size or self._page_size(entity)
        records_path = (
            ent.records_path if ent.records_path is not None else self.settings.records_path
        )
        ok_status = frozenset(range(200, 300)) | paginator.end_status
        seek = self.seeks(entity)
        inc = self._incremental(entity)
        request: PageRequest | None
        if resume is not None:
            window, request = self._resume(entity, resume, window, params, page_size)
        else:
            request = self.first_request(entity, window, params=params, page_size=page_size)
        key_param = self.settings.auth.query_param()
        seen: set[bytes] = set()
        while request is not None:
            key = orjson.dumps(request.to_json(), option=orjson.OPT_SORT_KEYS)
            if key in seen:
                raise SourceError(
                    "paginator asked for the same page twice; stopping",
                    source=self.name,
                    url=self.client.url(request.url),
                )
            seen.add(key)
            if self.settings.max_pages is not None and len(seen) > self.settings.max_pages:
                raise SourceError(
                    f"more than max_pages={self.settings.max_pages} pages; stopping",
                    source=self.name,
                    url=self.client.url(request.url),
                )
            resp = self.client.request(
                "GET",
                request.url,
                params=request.params or None,
                headers=request.headers or None,
                ok_status=ok_status,
                body_hook=self.decoding.body_hook if self.decoding else None,
            )
            if resp.status in paginator.end_status:
                return
            records = json_path(resp.data, records_path)
            if records is None:
                records = []
            if not isinstance(records, list):
                raise SourceError(
                    f"expected a list of records at '{records_path}', got {type(records).__name__}",
                    source=self.name,
                    url=self.client.url(request.url),
                )
            nxt = paginator.next(request, resp.data, resp.headers, len(records), page_size)
            if nxt is not None and key_param:  # a link echoing the API key: the auth adds it
                nxt = replace(nxt, url=_without_param(nxt.url, key_param))
            if self.decoding is not None and self.decoding.marker in resp.body:
                records = [self.decoding.record(r) for r in records]
            token: Checkpoint | None = None
            if seek and inc is not None and nxt is not None and records:
                after = inc.seek_key(records[-1])
                if after is None:
                    raise SourceError(
                        f"seek paging needs '{getattr(inc, 'cursor_field', '')}' and the id on "
                        "every record; the last record of the page has none",
                        source=self.name,
                        url=self.client.url(request.url),
                    )
                nxt = self.first_request(entity, window, after, params=params, page_size=page_size)
                token = _checkpoint(window, {"seek": list(after)})
            elif nxt is not None:
                token = _checkpoint(window, paginator.position(nxt))
            yield Page(records=records, checkpoint=token)
            request = nxt

    def _resume(
        self,
        entity: str,
        resume: Checkpoint,
        window: Window,
        params: dict[str, Any] | None = None,
        page_size: int | None = None,
    ) -> tuple[Window, PageRequest]:
        """The window and request a checkpoint resumes (or an older full-request checkpoint)."""
        token = orjson.loads(resume.token)
        if "at" not in token:
            return window, PageRequest.from_json(token)
        start, end = (parse_time(t) if t else None for t in token["window"])
        window = Window(start, end)
        at = token["at"]
        if isinstance(at, dict) and "seek" in at:
            cursor, rid = at["seek"]
            request = self.first_request(
                entity, window, (cursor, rid), params=params, page_size=page_size
            )
            return window, request
        first = self.first_request(entity, window, params=params, page_size=page_size)
        size = page_size or self._page_size(entity)
        return window, self._paginator(entity).resume(first, at, size)

    def _narrowed(self, entity: str, extra: dict[str, Any]) -> dict[str, Any]:
        """The entity's params narrowed by ``extra`` (a Tryton ``d`` list joins its domain)."""
        ent = self.entities[entity]
        inc = self._incremental(entity)
        params = {**self.settings.params, **ent.params}
        out = {**params, **extra}
        if isinstance(inc, TrytonDomainWindow) and isinstance(extra.get(inc.param), list):
            static = params.get(inc.param)
            if isinstance(static, str):
                static = tryton.decode_param(static)
            out[inc.param] = [*(static or []), *extra[inc.param]]
        return out

    def revisit(self, entity: str) -> Iterator[Page]:
        """Pages of the entity's ``revisit`` set, read whatever their cursor (none: nothing)."""
        if entity not in self.entities:
            raise SourceError(f"entity '{entity}' is not configured", source=self.name)
        rule = self.entities[entity].revisit
        if rule is None:
            return
        params = self._narrowed(entity, rule.params)
        yield from self._pages(entity, Window(None, None), None, params=params)

    def triggers(self, entity: str) -> list[Trigger]:
        """The entity's ``triggers``, parents named by entity or by profile resource."""
        if entity not in self.entities:
            raise SourceError(f"entity '{entity}' is not configured", source=self.name)
        by_name = {name: name for name in self.entities}
        by_name.update({e.resource: n for n, e in self.entities.items() if e.resource})
        return [
            Trigger(parent=by_name[rule.parent], path=rule.path)
            for rule in self.entities[entity].triggers
            if rule.parent in by_name
        ]

    def read(self, entity: str, ids: list[str]) -> Iterator[Page]:
        """Pages of the records with these ids.

        An ``id in`` domain (Tryton), else one GET each at ``read_path``.
        """
        if entity not in self.entities:
            raise SourceError(f"entity '{entity}' is not configured", source=self.name)
        ent = self.entities[entity]
        inc = self._incremental(entity)
        if isinstance(inc, TrytonDomainWindow):
            for i in range(0, len(ids), 100):
                chunk = [int(x) if x.isdigit() else x for x in ids[i : i + 100]]
                params = self._narrowed(entity, {inc.param: [[inc.id_field, "in", chunk]]})
                yield from self._pages(entity, Window(None, None), None, params=params)
            return
        for rid in ids:
            path = ent.read_path.format(path=ent.path.rstrip("/"), id=rid)
            resp = self.client.request(
                "GET",
                path,
                params={**self.settings.params, **ent.params} or None,
                headers={**self.settings.headers, **ent.headers} or None,
                ok_status=frozenset(range(200, 300)) | {404},
                body_hook=self.decoding.body_hook if self.decoding else None,
            )
            if resp.status == 404 or not isinstance(resp.data, dict):
                continue
            record = resp.data
            if self.decoding is not None:
                record = self.decoding.record(record)
            yield Page(records=[record])

    def counts(self, entity: str) -> bool:
        """Whether a count is configured for ``entity`` (its own or the source's)."""
        ent = self.entities.get(entity)
        return ent is not None and (ent.count or self.settings.count) is not None

    def count(self, entity: str, window: Window) -> WindowCount | None:
        """How many records of ``entity`` the ERP holds in ``window`` (None: not configured).

        ``ids``: the window's ids listed through the entity's own paging (seek where it seeks);
        ``endpoint``: one GET answering a number, with the window's filter parameters.
        """
        if entity not in self.entities:
            raise SourceError(f"entity '{entity}' is not configured", source=self.name)
        ent = self.entities[entity]
        how = ent.count or self.settings.count
        if how is None:
            return None
        if isinstance(how, IdsCount):
            inc = self._incremental(entity)
            cursor_field = getattr(inc, "cursor_field", None)
            ids: dict[str, str | None] = {}
            pages = self._pages(entity, window, None, params=how.params, page_size=how.page_size)
            for page in pages:
                for record in page.records:
                    value = record.get(how.id_field) if isinstance(record, dict) else None
                    if value not in (None, ""):
                        cursor = record.get(cursor_field) if cursor_field else None
                        ids[str(value)] = None if cursor is None else str(cursor)
            return WindowCount(total=len(ids), ids=ids, how="id listing")
        first = self.first_request(entity, window, params=how.params)
        path = how.path or ent.path.rstrip("/") + how.suffix
        params = {
            k: v
            for k, v in first.params.items()
            if not _paging_param(self, entity, k) and k not in how.drop
        }
        resp = self.client.request(
            "GET",
            path,
            params=params or None,
            headers={k: v for k, v in first.headers.items() if k.lower() != "range"} or None,
            body_hook=self.decoding.body_hook if self.decoding else None,
            what="count",
        )
        value = json_path(resp.data, how.count_path)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SourceError(
                f"expected a record count at '{how.count_path}', got {type(value).__name__}",
                source=self.name,
                url=self.client.url(path),
            )
        return WindowCount(total=value, how="count endpoint")


def _paging_param(source: RestSource, entity: str, name: str) -> bool:
    """Whether ``name`` is a paging or sort parameter of the entity (left out of a count)."""
    pager = source._paginator(entity)
    names = {
        getattr(pager, attr, None)
        for attr in ("offset_param", "limit_param", "page_param", "size_param", "cursor_param")
    }
    names.add(getattr(source._incremental(entity), "order_param", None))
    return name in names


def _checkpoint(window: Window, position: dict[str, Any]) -> Checkpoint:
    """A checkpoint: the window being pulled and where its next page starts, nothing else."""
    bounds = [t.isoformat() if t else None for t in (window.start, window.end)]
    return Checkpoint(orjson.dumps({"window": bounds, "at": position}).decode())


def _without_param(url: str, name: str) -> str:
    """``url`` without query parameter ``name``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode(kept)))
