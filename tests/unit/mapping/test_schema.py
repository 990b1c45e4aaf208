"""The JSON Schema for mapping files accepts every mapping in the repository and refuses junk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((REPO / "concord" / "schemas" / "mapping.schema.json").read_text())
MAPPINGS = sorted(
    p for p in (REPO / "mappings").rglob("*.yaml") if not p.name.endswith(".tests.yaml")
)


def _errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda p: str(p.relative_to(REPO / "mappings")))
def test_repository_mapping_validates_against_the_schema(path: Path) -> None:
    assert _errors(yaml.safe_load(path.read_text())) == []


def test_schema_refuses_an_unknown_expression_key() -> None:
    document = {
        "direction": "inbound",
        "entity": "orders",
        "id": "id",
        "fields": {"number": {"path": "number", "typo": 1}},
    }
    assert _errors(document)


def test_schema_refuses_two_sources_in_one_expression() -> None:
    document = {
        "direction": "inbound",
        "entity": "orders",
        "id": "id",
        "fields": {"number": {"path": "number", "const": "x"}},
    }
    assert _errors(document)
