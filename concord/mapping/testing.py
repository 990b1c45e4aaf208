"""Example-based tests that live next to a mapping: ``<name>.tests.yaml`` beside ``<name>.yaml``.

A tests file is a list of cases ``{name, input, expected}`` (``expected`` may be partial: only
the keys it lists are compared, at every level) or ``{name, input, reject: <output field>}``
(optionally ``reason: <text the reason must contain>``). Inbound outputs are also validated with
the canonical model, so a case fails if the mapping produces something the pipeline would
reject; outbound inputs are validated as ``Customer360`` and dumped as the pipeline does.
Timestamps in the tests file stay strings, as they arrive in JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, SequenceNode

from concord.errors import MappingError, RecordRejected
from concord.mapping.loader import Mapping, load_mapping
from concord.model import ENTITY_MODELS, Customer360

CASE_KEYS = frozenset({"name", "input", "expected", "reject", "reason", "description"})


class _JsonLikeLoader(yaml.SafeLoader):
    """A safe loader that leaves ``2025-01-31T10:00:00Z`` as a string, like JSON would."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case: ``passed`` and, if not, what differed."""

    mapping: Path
    name: str
    line: int
    passed: bool
    message: str = ""

    def __str__(self) -> str:
        status = "ok" if self.passed else f"FAILED: {self.message}"
        return f"{self.mapping.name} case '{self.name}' (line {self.line}): {status}"


def cases_path(mapping_path: Path) -> Path:
    """The tests file that belongs to a mapping file."""
    return mapping_path.with_name(mapping_path.stem + ".tests.yaml")


def load_cases(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The cases of a tests file with their line numbers."""
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=_JsonLikeLoader)
    except yaml.YAMLError as exc:
        raise MappingError(f"tests file is not valid YAML: {exc}", file=str(path)) from None
    if root is None:
        return []
    if not isinstance(root, SequenceNode):
        raise MappingError("a tests file is a list of cases", file=str(path), line=1)
    loader = _JsonLikeLoader("")
    cases: list[tuple[int, dict[str, Any]]] = []
    for node in root.value:
        line = node.start_mark.line + 1
        if not isinstance(node, MappingNode):
            raise MappingError(
                "each case is a mapping {name, input, expected|reject}", file=str(path), line=line
            )
        case = loader.construct_object(node, deep=True)
        unknown = set(case) - CASE_KEYS
        if (
            unknown
            or "name" not in case
            or "input" not in case
            or (("expected" in case) == ("reject" in case))
        ):
            raise MappingError(
                "a case has 'name', 'input' and exactly one of 'expected' or 'reject'"
                + (f" (unknown keys: {', '.join(sorted(unknown))})" if unknown else ""),
                file=str(path),
                line=line,
            )
        cases.append((line, case))
    loader.dispose()
    return cases


def run_mapping_tests(path: Path) -> list[CaseResult]:
    """Run every case of the mapping at ``path`` (or of the tests file at ``path``)."""
    path = Path(path)
    if path.name.endswith(".tests.yaml"):
        path = path.with_name(path.name.removesuffix(".tests.yaml") + ".yaml")
    mapping = load_mapping(path)
    cases_file = cases_path(path)
    if not cases_file.exists():
        return []
    return [run_case(mapping, line, case) for line, case in load_cases(cases_file)]


def run_case(mapping: Mapping, line: int, case: dict[str, Any]) -> CaseResult:
    """Run one test case of a mapping; the result says what differed."""
    name = str(case["name"])

    def result(passed: bool, message: str = "") -> CaseResult:
        return CaseResult(mapping.path, name, line, passed, message)

    record = case["input"]
    if mapping.direction == "outbound":
        try:
            record = Customer360.model_validate(record).model_dump(mode="python")
        except ValidationError as exc:
            return result(
                False, "input is not a valid Customer360: " + re.sub(r"\s+", " ", str(exc))
            )
    try:
        output = mapping.apply(record)
    except RecordRejected as exc:
        if "reject" not in case:
            return result(False, f"rejected unexpectedly: {exc}")
        if exc.field != case["reject"]:
            return result(
                False, f"rejected on field '{exc.field}', expected '{case['reject']}': {exc}"
            )
        if "reason" in case and str(case["reason"]) not in exc.reason:
            return result(False, f"reason {exc.reason!r} does not contain {case['reason']!r}")
        return result(True)
    if "reject" in case:
        return result(False, f"expected a reject on '{case['reject']}', got {output!r}")
    problems = list(differences(case["expected"], output, ""))
    if problems:
        return result(False, "; ".join(problems))
    if mapping.direction == "inbound":
        invalid = validation_problem(mapping.entity, output)
        if invalid:
            return result(False, f"output does not validate as {mapping.entity}: {invalid}")
    return result(True)


def validation_problem(entity: str, output: dict[str, Any]) -> str | None:
    """Why the canonical model refuses a mapped output, or None when it takes it."""
    model = ENTITY_MODELS[entity]
    data = {k: v for k, v in output.items() if k != "id"}
    data["ref"] = {"system": "test", "entity": entity, "id": str(output.get("id"))}
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return re.sub(r"\s+", " ", str(exc))
    return None


def differences(expected: Any, actual: Any, where: str) -> list[str]:
    """What differs between an expected (YAML) value and an actual output value."""
    label = where or "output"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{label}: expected an object, got {actual!r}"]
        found: list[str] = []
        for key, value in expected.items():
            sub = f"{where}.{key}" if where else str(key)
            if key not in actual:
                if value is not None:
                    found.append(f"{sub}: missing from the output")
                continue
            found.extend(differences(value, actual[key], sub))
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{label}: expected {expected!r}, got {actual!r}"]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in differences(e, a, f"{where}[{i}]")
        ]
    return [] if same(expected, actual) else [f"{label}: expected {expected!r}, got {actual!r}"]


def same(expected: Any, actual: Any) -> bool:
    """Scalar equality across YAML and Python types ("119.00" == Decimal('119.00'))."""
    if isinstance(actual, bool) or isinstance(expected, bool) or expected is None:
        return expected is actual or (expected == actual and type(expected) is type(actual))
    if isinstance(actual, Decimal):
        try:
            return Decimal(str(expected)) == actual and not isinstance(expected, bool)
        except InvalidOperation:
            return False
    if isinstance(actual, datetime):
        if isinstance(expected, str):
            try:
                return datetime.fromisoformat(expected) == actual
            except ValueError:
                return False
        return bool(expected == actual)
    if isinstance(actual, date):
        return str(expected) == actual.isoformat()
    return bool(expected == actual)
