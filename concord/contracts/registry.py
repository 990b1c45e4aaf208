"""Which connector class implements a ``type`` named in ``concord.yaml``.

Core names its connectors by dotted path and imports them only when a config asks for them, so
core never imports ``connectors`` (a boundary test checks) and a third-party connector is
configured as ``type: package.module:Class``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from concord.contracts.sections import SourceConfig, TargetConfig
from concord.contracts.source import Source, SourceType
from concord.contracts.target import Target, TargetType
from concord.errors import ConfigError

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
        close = difflib.get_close_matches(type_name, list(registry), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(registry)}"
        raise ConfigError(f"unknown {kind} type '{type_name}'; {hint}")
    module_name, _, attr = dotted.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{kind} type '{type_name}' cannot be loaded: {exc}") from exc


def source_type(type_name: str) -> SourceType:
    """The source connector class registered as ``type_name`` (or at that ``module:Class``)."""
    found: SourceType = _load("source", type_name, SOURCE_TYPES)
    return found


def target_type(type_name: str) -> TargetType:
    """The target connector class registered as ``type_name`` (or at that ``module:Class``)."""
    found: TargetType = _load("target", type_name, TARGET_TYPES)
    return found


def build_source(config: SourceConfig) -> Source:
    """A ready source for one config section."""
    return source_type(config.type).from_config(config.pulled())


def build_target(config: TargetConfig) -> Target:
    """A ready target for one config section."""
    return target_type(config.type).from_config(config)
