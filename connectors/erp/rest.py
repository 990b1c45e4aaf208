"""Declarative REST source: an ERP's REST API described in YAML, pulled page by page.

The source section of ``concord.yaml`` gives the base URL, auth style, paginator, where records
sit in a response and how the incremental window is sent; each entity gives its path and may
override any of these. Pages are parsed with orjson and handed on one at a time (memory stays
flat), each with the request that fetches the next page as its checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from concord.config import SourceConfig
from concord.contracts import Page, Window
from concord.errors import ConcordError, ConfigError, SourceError
from connectors.auth import AuthConfig, NoAuth
from connectors.erp.pagination import PageRequest, PaginatorConfig, SinglePage, json_path
from connectors.http import HttpClient, HttpSettings


class IncrementalSettings(BaseModel):
    """How the window is sent: query parameters for its start and (optional) end."""

    model_config = ConfigDict(extra="forbid")

    start_param: str
    end_param: str | None = None
    format: Literal["iso", "iso_z", "epoch", "date"] = "iso_z"

    def encode(self, value: datetime) -> str:
        value = value.astimezone(UTC)
        if self.format == "epoch":
            return str(int(value.timestamp()))
        if self.format == "date":
            return value.date().isoformat()
        if self.format == "iso_z":
            return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return value.isoformat()


class RestEntitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    params: dict[str, Any] = Field(default_factory=dict)
    records_path: str | None = None
    paginator: PaginatorConfig | None = None
    page_size: int | None = Field(default=None, ge=1, le=100_000)
    incremental: IncrementalSettings | None = None


class RestSourceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://")
    auth: AuthConfig = Field(default_factory=NoAuth)
    http: HttpSettings = Field(default_factory=HttpSettings)
    paginator: PaginatorConfig = Field(default_factory=SinglePage)
    page_size: int = Field(default=100, ge=1, le=100_000)
    records_path: str | None = "data"
    params: dict[str, Any] = Field(default_factory=dict)
    incremental: IncrementalSettings | None = None


class RestSource:
    """A ``Source`` over a REST API configured in YAML."""

    def __init__(
        self, name: str, settings: RestSourceSettings, entities: dict[str, RestEntitySettings]
    ) -> None:
        self.name = name
        self.settings = settings
        self.entities = entities
        self.client = HttpClient(
            name, settings.base_url, auth=settings.auth, settings=settings.http, error=self._error
        )

    @classmethod
    def from_config(cls, config: SourceConfig) -> RestSource:
        try:
            settings = RestSourceSettings.model_validate(config.settings)
            entities = {
                name: RestEntitySettings.model_validate(ec.settings)
                for name, ec in config.entities.items()
            }
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                err["msg"], key=".".join(["sources", config.name, *map(str, err["loc"])])
            ) from None
        return cls(config.name, settings, entities)

    def _error(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        attempt: int | None = None,
        retriable: bool = False,
        body: Any = None,
    ) -> ConcordError:
        return SourceError(
            message, source=self.name, url=url, status=status, attempt=attempt, retriable=retriable
        )

    def close(self) -> None:
        self.client.close()

    def first_request(self, entity: str, window: Window) -> PageRequest:
        ent = self.entities[entity]
        inc = ent.incremental or self.settings.incremental
        params: dict[str, Any] = {**self.settings.params, **ent.params}
        if inc is not None:
            if window.start is not None:
                params[inc.start_param] = inc.encode(window.start)
            if window.end is not None and inc.end_param:
                params[inc.end_param] = inc.encode(window.end)
        paginator = ent.paginator or self.settings.paginator
        return paginator.first(
            PageRequest(ent.path, params), ent.page_size or self.settings.page_size
        )

    def extract(self, entity: str, window: Window, resume: str | None) -> Iterator[Page]:
        if entity not in self.entities:
            raise SourceError(f"entity '{entity}' is not configured", source=self.name)
        ent = self.entities[entity]
        paginator = ent.paginator or self.settings.paginator
        page_size = ent.page_size or self.settings.page_size
        records_path = (
            ent.records_path if ent.records_path is not None else self.settings.records_path
        )
        request: PageRequest | None = (
            PageRequest.from_json(orjson.loads(resume))
            if resume
            else self.first_request(entity, window)
        )
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
            resp = self.client.request("GET", request.url, params=request.params or None)
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
            token = orjson.dumps(nxt.to_json()).decode() if nxt is not None else None
            yield Page(records=records, checkpoint=token)
            request = nxt
