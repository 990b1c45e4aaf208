"""Declarative SOAP source on zeep: an ERP's SOAP services described in YAML, pulled page by page.

The source section of ``concord.yaml`` gives the WSDL (file or URL, fetched once and cached),
the service address (the configured ``base_url`` + the entity's ``address``, or a WSDL URL
without its query; the WSDL's own ``soap:address`` only with ``wsdl_address: true`` and on a
configured origin), auth (HTTP Basic, bearer or WS-Security
UsernameToken), ``http`` settings (TLS included), paging and the incremental filter; each entity
names its operation, request arguments and the dotted path to the records below the response
element, and may override any source key. zeep holds the contract: it loads the WSDL with DTDs,
entities and external references forbidden and builds every request envelope; the response is
read by the fast lxml reader (or by zeep itself with ``parser: zeep``) into plain dicts that
flow into the same map stage as REST records. Every page carries the checkpoint that resumes
after it. Faults, HTTP errors, malformed XML, XML attacks and schema mismatches raise
``SourceError`` naming source, operation and cause. Every download and call goes through the
HTTP kit (``soap_transport``), which sends only to the configured origins: a WSDL whose
``soap:address`` names another host gets nothing, not even the request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from lxml import etree  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from concord.contracts import Checkpoint, Exclusion, Page, SourceConfig, Window
from concord.errors import ConfigError, SourceError
from concord.secrets import SecretRef
from concord.utc import parse_time, utcnow
from connectors.erp.profile import apply_profile
from connectors.erp.soap_paging import (
    BookmarkPaging,
    DateWindows,
    SoapIncremental,
    SoapPaging,
)
from connectors.erp.soap_response import (
    ResponsePlan,
    ResponseProblem,
    find_fault,
    read_with_lxml,
    read_with_zeep,
    zeep_xml_parser,
)
from connectors.erp.soap_transport import SOAP_ANSWERS, KitTransport, soap_http
from connectors.http import BasicAuth, BearerAuth, HttpSettings, NoAuth, safe_url
from connectors.http.settings import fold_legacy_tls

REPO_ROOT = Path(__file__).resolve().parents[2]
M = TypeVar("M", bound=BaseModel)


class WsSecurityAuth(BaseModel):
    """WS-Security UsernameToken in the SOAP header (text password, or digest when asked)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["ws_security"]
    username: str
    password: SecretRef
    digest: bool = False


SoapAuthConfig = Annotated[
    NoAuth | BasicAuth | BearerAuth | WsSecurityAuth, Field(discriminator="type")
]


class SoapEntitySettings(BaseModel):
    """One entity: which operation, with which arguments, and where its records are."""

    model_config = ConfigDict(extra="forbid")

    operation: str = "ReadMultiple"
    records_path: str
    wsdl: str | None = None
    address: str | None = None
    wsdl_address: bool | None = None
    service: str | None = None
    port: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    filters: list[dict[str, Any]] | None = None
    paginator: SoapPaging | None = None
    page_size: int | None = Field(default=None, ge=1, le=100_000)
    incremental: SoapIncremental | None = None
    date_windows: DateWindows | None = None
    exclude_where: list[Exclusion] = Field(default_factory=list)


class SoapSourceSettings(BaseModel):
    """Source-wide keys; an entity's own keys win."""

    model_config = ConfigDict(extra="forbid")

    wsdl: str | None = None
    base_url: str | None = Field(default=None, pattern=r"^https?://")
    auth: SoapAuthConfig = Field(default_factory=NoAuth)
    http: HttpSettings = Field(default_factory=HttpSettings)
    parser: Literal["lxml", "zeep"] = "lxml"
    paginator: SoapPaging = Field(default_factory=BookmarkPaging)
    page_size: int = Field(default=500, ge=1, le=100_000)
    filter_arg: str = "filter"
    incremental: SoapIncremental | None = None
    date_windows: DateWindows | None = None
    wsdl_cache_seconds: int = Field(default=3600, ge=0)
    wsdl_address: bool = False
    blank_dates: list[str] = Field(default_factory=list)
    allowed_origins: list[Annotated[str, Field(pattern=r"^https?://")]] = Field(
        default_factory=list
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_tls(cls, value: Any) -> Any:
        return fold_legacy_tls(value) if isinstance(value, dict) else value

    def origins(self, entities: dict[str, SoapEntitySettings]) -> list[str]:
        """Every URL the config names: only their origins are ever sent to."""
        urls = [self.base_url, self.wsdl, *self.allowed_origins]
        for ent in entities.values():
            urls += [ent.wsdl, ent.address]
        return [u for u in urls if u and "://" in u]


@dataclass
class _Call:
    """Everything needed to call one entity's operation, resolved once from the WSDL."""

    client: Any
    service: Any
    operation: str
    address: str
    headers: dict[str, str]
    plan: ResponsePlan
    read: Callable[[bytes], list[dict[str, Any]]]


class SoapSource:
    """A ``Source`` over SOAP services configured in YAML (see the module docstring)."""

    def __init__(
        self, name: str, settings: SoapSourceSettings, entities: dict[str, SoapEntitySettings]
    ) -> None:
        self.name = name
        self.settings = settings
        self.entities = entities
        http_auth = None if isinstance(settings.auth, WsSecurityAuth) else settings.auth
        self.http = soap_http(name, settings.http, http_auth, settings.origins(entities))
        self.session = self.http.session
        self._clients: dict[str, Any] = {}
        self._calls: dict[str, _Call] = {}

    @classmethod
    def parse_settings(
        cls, config: SourceConfig
    ) -> tuple[SoapSourceSettings, dict[str, SoapEntitySettings]]:
        """The section's settings; errors name the key."""
        raw, raw_entities = apply_profile(
            config.name,
            config.settings,
            {name: ec.settings for name, ec in config.entities.items()},
        )
        settings = _validate(SoapSourceSettings, raw, ("sources", config.name))
        entities = {
            name: _validate(SoapEntitySettings, spec, ("sources", config.name, "entities", name))
            for name, spec in raw_entities.items()
        }
        for name, ent in entities.items():
            if not (ent.wsdl or settings.wsdl):
                raise ConfigError(
                    "a SOAP entity needs a 'wsdl' (file or URL), here or on the source",
                    key=f"sources.{config.name}.entities.{name}.wsdl",
                )
            _check_address(config.name, name, settings, ent)
        return settings, entities

    @classmethod
    def validate(cls, config: SourceConfig) -> None:
        """Check the section without loading a WSDL."""
        cls.parse_settings(config)

    @classmethod
    def from_config(cls, config: SourceConfig) -> SoapSource:
        """Build from the config section; the WSDL is loaded at the first pull."""
        return cls(config.name, *cls.parse_settings(config))

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()

    # -- contract -------------------------------------------------------------------------------

    def _wsdl_location(self, entity: str) -> str:
        raw = self.entities[entity].wsdl or self.settings.wsdl or ""
        if "://" in raw:
            return raw
        path = Path(raw)
        for candidate in (path, REPO_ROOT / path) if not path.is_absolute() else (path,):
            if candidate.is_file():
                return str(candidate.resolve())
        raise ConfigError(
            f"WSDL file not found: {raw}", key=f"sources.{self.name}.entities.{entity}.wsdl"
        )

    def _zeep_settings(self) -> Any:
        from zeep import Settings

        return Settings(
            strict=True,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
            xml_huge_tree=False,
            raw_response=False,
        )

    def _client(self, location: str) -> Any:
        if location in self._clients:
            return self._clients[location]
        from zeep import Client
        from zeep.exceptions import Error as ZeepError

        transport = KitTransport(self.http, cache_seconds=self.settings.wsdl_cache_seconds)
        wsse = None
        if isinstance(self.settings.auth, WsSecurityAuth):
            from zeep.wsse.username import UsernameToken

            auth = self.settings.auth
            wsse = UsernameToken(  # type: ignore[no-untyped-call]
                auth.username, auth.password.resolve(), use_digest=auth.digest
            )
        try:
            client = Client(  # type: ignore[no-untyped-call]
                location, transport=transport, settings=self._zeep_settings(), wsse=wsse
            )
        except (ZeepError, etree.XMLSyntaxError, OSError, ValueError) as exc:
            raise SourceError(
                f"cannot load the WSDL: {type(exc).__name__}: {str(exc)[:300]}",
                source=self.name,
                url=safe_url(location) if "://" in location else location,
            ) from None
        self._clients[location] = client
        return client

    def _call(self, entity: str) -> _Call:
        if entity in self._calls:
            return self._calls[entity]
        ent = self.entities[entity]
        client = self._client(self._wsdl_location(entity))
        what = f"operation {ent.operation} for '{entity}'"
        try:
            if ent.service:
                proxy = client.bind(ent.service, ent.port)
            else:
                proxy = client.service
            binding = proxy._binding
            operation = binding.get(ent.operation)
        except (ValueError, KeyError, AttributeError, LookupError) as exc:
            raise ConfigError(
                f"{what} is not in the WSDL ({exc})",
                key=f"sources.{self.name}.entities.{entity}.operation",
            ) from None
        address = self._address(entity, proxy)
        service = client.create_service(binding.name, address)
        wrapper = operation.output.body
        try:
            plan = ResponsePlan.build(ent.operation, wrapper, ent.records_path)
        except LookupError as exc:
            raise ConfigError(
                f"records_path '{ent.records_path}': {exc}",
                key=f"sources.{self.name}.entities.{entity}.records_path",
            ) from None
        action = operation.soapaction or ""
        if type(binding).__name__ == "Soap12Binding":
            headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
        else:
            headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
        if self.settings.parser == "zeep":
            schema, parse = client.wsdl.types, zeep_xml_parser(client)

            def read(body: bytes) -> list[dict[str, Any]]:
                return read_with_zeep(body, plan, schema, parse)

        else:

            def read(body: bytes) -> list[dict[str, Any]]:
                return read_with_lxml(body, plan)

        call = _Call(client, service, ent.operation, address, headers, plan, read)
        self._calls[entity] = call
        return call

    def _address(self, entity: str, proxy: Any) -> str:
        """Where the entity's calls go: the configured address by default (see ``_check_address``).

        The WSDL's ``soap:address`` is used only with ``wsdl_address: true``, and only when its
        origin is a configured one; a real NAV WSDL names the server's own host, which may not
        be the one the config reaches it by.
        """
        ent = self.entities[entity]
        configured = ent.address
        if configured and "://" in configured:
            return configured
        if configured:
            assert self.settings.base_url  # _check_address
            return self.settings.base_url.rstrip("/") + "/" + configured.lstrip("/")
        use_wsdl = ent.wsdl_address if ent.wsdl_address is not None else self.settings.wsdl_address
        if not use_wsdl:
            wsdl = ent.wsdl or self.settings.wsdl or ""
            return wsdl.split("?", 1)[0]  # _check_address: a URL (NAV: the page's URL + ?wsdl)
        address = str(proxy._binding_options["address"])
        if self.http.guard.refusal(address) is not None:
            raise SourceError(
                f"the WSDL's soap:address {safe_url(address)} is not on a configured origin; "
                "set the entity's 'address' (or list the origin under 'allowed_origins'): "
                "nothing is sent to a host named only by a WSDL",
                source=self.name,
                url=safe_url(address),
            )
        return address

    def exclusions(self, entity: str) -> list[Exclusion]:
        """The entity's ``exclude_where`` (a profile's: G/L lines of a cash receipt journal)."""
        ent = self.entities.get(entity)
        return list(ent.exclude_where) if ent is not None else []

    # -- pulling --------------------------------------------------------------------------------

    def fetch(self, entity: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
        """One call of the entity's operation with ``arguments``; the records it returned."""
        call = self._call(entity)
        what = f"operation {call.operation} for '{entity}'"
        try:
            envelope = call.client.create_message(call.service, call.operation, **arguments)
        except Exception as exc:  # zeep raises TypeError/ValidationError for bad arguments
            raise SourceError(
                f"{what}: the request arguments do not fit the WSDL: {str(exc)[:300]}",
                source=self.name,
                url=safe_url(call.address),
            ) from None
        body = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
        reply = self.http.request(
            "POST",
            call.address,
            content=body,
            headers=call.headers,
            parse_json=False,
            ok_status=SOAP_ANSWERS,
            what=what,
        )
        if reply.status == 500:
            fault = find_fault(reply.body)
            raise SourceError(
                f"{what}: SOAP Fault {fault}"
                if fault
                else f"{what}: server error without a SOAP Fault",
                source=self.name,
                url=safe_url(call.address),
                status=500,
                retriable=False,
            )
        try:
            found = call.read(reply.body)
        except ResponseProblem as problem:
            label = "SOAP Fault " if problem.kind == "fault" else ""
            raise SourceError(
                f"{what}: {label}{problem.text}",
                source=self.name,
                url=safe_url(call.address),
                status=reply.status,
                retriable=False,
            ) from None
        blanks = self.settings.blank_dates
        return [_blank_dates(r, blanks) for r in found] if blanks else found

    def extract(self, entity: str, window: Window, resume: Checkpoint | None) -> Iterator[Page]:
        """Yield pages of ``entity`` in ``window`` (by date slices, then bookmarks)."""
        if entity not in self.entities:
            raise SourceError(f"entity '{entity}' is not configured", source=self.name)
        ent = self.entities[entity]
        settings = self.settings
        pager = ent.paginator or settings.paginator
        size = ent.page_size or settings.page_size
        incremental = ent.incremental or settings.incremental
        windows = ent.date_windows or settings.date_windows
        base: dict[str, Any] = dict(ent.arguments)
        if ent.filters is not None:
            base[settings.filter_arg] = [dict(f) for f in ent.filters]
        if resume:
            token = json.loads(resume.token)
            start = parse_time(token["from"]) if token.get("from") else None
            end = parse_time(token["end"]) if token.get("end") else None
            args: dict[str, Any] | None = token.get("args")
        else:
            start, end, args = window.start, window.end, None
        if windows is not None and incremental is not None:
            end = end or utcnow().replace(microsecond=0)
            slices: list[tuple[datetime | None, datetime | None]] = list(windows.slices(start, end))
        else:
            slices = [(start, end)]
        for index, (low, high) in enumerate(slices):
            arguments = base
            if incremental is not None:
                arguments = incremental.apply(base, settings.filter_arg, low, high)
            paging: dict[str, Any] | None = args if args is not None else pager.first(size)
            args = None
            seen: set[str] = set()
            while paging is not None:
                marker = json.dumps(paging, sort_keys=True)
                if marker in seen:
                    raise SourceError(
                        f"operation {ent.operation} for '{entity}': the same page was asked "
                        "for twice; stopping",
                        source=self.name,
                    )
                seen.add(marker)
                records = self.fetch(entity, {**arguments, **paging})
                try:
                    following = pager.next(paging, records, size)
                except ValueError as exc:
                    raise SourceError(
                        f"operation {ent.operation} for '{entity}': {exc}", source=self.name
                    ) from None
                checkpoint: Checkpoint | None = None
                if following is not None:
                    checkpoint = _checkpoint(low, end, following)
                elif index + 1 < len(slices):
                    checkpoint = _checkpoint(slices[index + 1][0], end, None)
                yield Page(records=records, checkpoint=checkpoint)
                paging = following


def _blank_dates(record: dict[str, Any], blanks: list[str]) -> dict[str, Any]:
    """The record with every value in ``blanks`` (NAV's ``0001-01-01``) as None, lines too."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, str) and value in blanks:
            out[key] = None
        elif isinstance(value, dict):
            out[key] = _blank_dates(value, blanks)
        elif isinstance(value, list):
            out[key] = [_blank_dates(v, blanks) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def _check_address(
    source: str, entity: str, settings: SoapSourceSettings, ent: SoapEntitySettings
) -> None:
    """An entity must say where its calls go: an address, a WSDL URL, or ``wsdl_address``."""
    key = f"sources.{source}.entities.{entity}.address"
    if ent.address:
        if "://" not in ent.address and not settings.base_url:
            raise ConfigError("a relative 'address' needs 'base_url' on the source", key=key)
        return
    use_wsdl = ent.wsdl_address if ent.wsdl_address is not None else settings.wsdl_address
    wsdl = ent.wsdl or settings.wsdl or ""
    if use_wsdl or "://" in wsdl:
        return
    raise ConfigError(
        "a SOAP entity whose WSDL is a file needs an 'address' (the service path relative to "
        "'base_url', e.g. Page/Customer, or an absolute URL); 'wsdl_address: true' uses the "
        "WSDL's soap:address instead, when its origin is configured",
        key=key,
    )


def _validate(model: type[M], data: dict[str, Any], where: tuple[str, ...]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, prefix=where, model=model) from None


def _checkpoint(
    start: datetime | None, end: datetime | None, args: dict[str, Any] | None
) -> Checkpoint:
    return Checkpoint(
        json.dumps(
            {
                "from": start.isoformat() if start else None,
                "end": end.isoformat() if end else None,
                "args": args,
            },
            sort_keys=True,
        )
    )
