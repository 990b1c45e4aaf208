"""Every mapping under mappings/ loads, has example cases next to it, and passes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from concord.mapping import load_mapping
from concord.mapping.testing import cases_path, run_mapping_tests

REPO = Path(__file__).resolve().parents[3]
MAPPINGS = sorted(
    p for p in (REPO / "mappings").rglob("*.yaml") if not p.name.endswith(".tests.yaml")
)


def test_the_repository_has_mappings() -> None:
    assert MAPPINGS


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda p: str(p.relative_to(REPO / "mappings")))
def test_mapping_passes_its_example_cases(path: Path) -> None:
    load_mapping(path)
    assert cases_path(path).exists(), f"{path.name} has no {cases_path(path).name}"
    results = run_mapping_tests(path)
    assert results, f"{cases_path(path)} has no cases"
    failed = [str(r) for r in results if not r.passed]
    assert not failed, "\n".join(failed)
