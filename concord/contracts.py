"""The contracts connectors implement: ``Source`` (pull pages) and ``Target`` (push records).

Core owns these; connectors depend on core, never the reverse. A connector is found by its
``type`` name in ``SOURCE_TYPES``/``TARGET_TYPES`` (or a ``module:Class`` path) and built from its
config section. ``extract`` yields pages with a checkpoint token: the pipeline stores the token in
the same transaction as the page, so a crash resumes after the last committed page.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from concord.config import SourceConfig, TargetConfig
from concord.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Window:
    """The incremental window: records changed at or after ``start`` and before ``end``."""

    start: datetime | None
    end: datetime | None


@dataclass(slots=True)
class Page:
    """One page of records and the token that resumes after it (None: nothing more)."""

    records: list[dict[str, Any]]
    checkpoint: str | None = None


@runtime_checkable
class Source(Protocol):
    name: str

    def extract(self, entity: str, window: Window, resume: str | None) -> Iterator[Page]:
        """Yield pages of raw records of ``entity`` changed in ``window``, from ``resume`` on."""
        ...

    def close(self) -> None: ...


@dataclass(slots=True)
class PushRecord:
    """One customer to send: its concord id, the target properties, and merge hints."""

    key: str
    properties: dict[str, Any]
    supersedes: list[str] = field(default_factory=list)
    remote_id: str | None = None


@dataclass(slots=True)
class PushOutcome:
    """What the target said about one record."""

    key: str
    ok: bool
    remote_id: str | None = None
    error: str | None = None
    retriable: bool = False


@runtime_checkable
class Target(Protocol):
    name: str
    max_batch: int

    def push(self, records: Sequence[PushRecord]) -> list[PushOutcome]:
        """Upsert records; return one outcome per record (per-record failure is not raised)."""
        ...

    def close(self) -> None: ...


SOURCE_TYPES: dict[str, str] = {
    "rest": "connectors.erp.rest:RestSource",
    "soap": "connectors.erp.soap:SoapSource",
}
TARGET_TYPES: dict[str, str] = {
    "hubspot": "connectors.crm.hubspot:HubSpotTarget",
    "salesforce": "connectors.crm.salesforce:SalesforceTarget",
    "rest": "connectors.crm.rest:RestTarget",
}


def _load(kind: str, type_name: str, registry: dict[str, str]) -> Any:
    dotted = registry.get(type_name, type_name)
    if ":" not in dotted:
        raise ConfigError(f"unknown {kind} type '{type_name}'; known: {', '.join(registry)}")
    module_name, _, attr = dotted.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{kind} type '{type_name}' cannot be loaded: {exc}") from exc


def build_source(config: SourceConfig) -> Source:
    factory = _load("source", config.type, SOURCE_TYPES)
    source: Source = factory.from_config(config)
    return source


def build_target(config: TargetConfig) -> Target:
    factory = _load("target", config.type, TARGET_TYPES)
    target: Target = factory.from_config(config)
    return target
