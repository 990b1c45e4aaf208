"""The canonical model refuses what would make totals or times ambiguous."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from concord.model import ENTITY_MODELS, Order, SourceRef

REF = SourceRef(system="erp", entity="orders", id="1")


def order(**kw: object) -> Order:
    base: dict[str, object] = {
        "ref": REF,
        "number": "SO-1",
        "customer_id": "C-1",
        "ordered_at": "2026-01-02T03:04:05+01:00",
        "status": "confirmed",
        "currency": "EUR",
        "net_total": "100.00",
        "gross_total": "119.00",
    }
    return Order.model_validate({**base, **kw})


def test_times_are_converted_to_utc() -> None:
    assert order().ordered_at == datetime.fromisoformat("2026-01-02T02:04:05+00:00")


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        order(ordered_at="2026-01-02T03:04:05")


def test_amounts_stay_exact_decimals() -> None:
    assert order().gross_total == Decimal("119.00")


def test_currency_must_be_iso_code() -> None:
    with pytest.raises(ValidationError):
        order(currency="euro")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        order(colour="red")


def test_public_entities_are_pinned() -> None:
    assert list(ENTITY_MODELS) == [
        "customers",
        "orders",
        "shipments",
        "invoices",
        "payments",
        "exchange_rates",
    ]


def test_public_api_of_the_pipeline_is_pinned() -> None:
    import concord.mapping
    import concord.pipeline

    assert sorted(concord.pipeline.__all__) == [
        "RunContext",
        "RunOptions",
        "RunReport",
        "build_360",
        "dry_run_plan",
        "extract",
        "load_mappings",
        "locked_run",
        "map_entity",
        "new_run_id",
        "open_context",
        "push",
        "reconcile",
        "resolve",
        "run_sync",
    ]
    for name in concord.pipeline.__all__:
        assert getattr(concord.pipeline, name) is not None, name
    assert sorted(concord.mapping.__all__) == ["Mapping", "load_mapping", "mapping_from_text"]


def test_public_api_of_the_connector_contracts_is_pinned() -> None:
    import concord.contracts
    import concord.testing

    assert sorted(concord.contracts.__all__) == [
        "ArchivingTarget",
        "Checkpoint",
        "CountingSource",
        "EntityConfig",
        "ExcludingSource",
        "Exclusion",
        "MergingTarget",
        "ObjectKind",
        "Page",
        "PropertySpec",
        "PropertyState",
        "PropertyTarget",
        "PushOutcome",
        "PushRecord",
        "ReadingTarget",
        "RemoteRecord",
        "RevisitingSource",
        "SOURCE_TYPES",
        "ShardSpec",
        "Source",
        "SourceConfig",
        "SourceType",
        "Supersession",
        "TARGET_TYPES",
        "Target",
        "TargetConfig",
        "TargetType",
        "Trigger",
        "Window",
        "WindowCount",
        "build_source",
        "build_target",
        "source_type",
        "target_type",
    ]
    assert sorted(concord.testing.__all__) == ["SourceContract", "TargetContract"]
