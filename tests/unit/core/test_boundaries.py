"""The import boundaries docs/architecture.md draws, checked on the source (AST, no imports run).

Connectors depend only on core's contracts layer; core never imports a connector, the sandbox,
the benchmarks or the tests; the DAG file sees only ``concord.airflow`` and ``concord.config``;
and a stage imports only core and the stages before it, never a later stage or a runner.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

CONTRACTS_LAYER = (
    "concord.contracts",
    "concord.errors",
    "concord.redact",
    "concord.secrets",
    "concord.utc",
    "concord.yamlfile",
)
"""What a connector may import from concord: modules that import nothing else of concord."""

CORE = (
    *CONTRACTS_LAYER,
    "concord.hashing",
    "concord.config",
    "concord.model",
    "concord.overrides",
    "concord.store",
    "concord.mapping",
    "concord.pipeline.context",
    "concord.pipeline.reports",
)
"""What every stage may import."""

STAGES = (
    (
        "concord.pipeline.extract",
        "concord.pipeline.prefetch",
        "concord.pipeline.shards",
        "concord.pipeline.concurrent_extract",
    ),
    (
        "concord.pipeline.map",
        "concord.pipeline.map_batches",
        "concord.pipeline.rows",
        "concord.pipeline.replay",
        "concord.pipeline.gates",
    ),
    ("concord.identity", "concord.pipeline.resolve"),
    ("concord.customer360", "concord.pipeline.build_360"),
    ("concord.push", "concord.pipeline.push"),
    ("concord.pipeline.reconcile",),
)
"""The stages in data-flow order, each with the modules that make it up."""

RUNNERS = (
    "concord.pipeline.lifecycle",
    "concord.pipeline.sync",
    "concord.pipeline.memory",
    "concord.pipeline.dry_run",
    "concord.airflow",
    "concord.cli",
    "concord.testing",
)
"""What runs the stages; they may import anything in concord, and no stage imports them."""


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module a file imports (function-level and TYPE_CHECKING imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module
                for alias in node.names:  # ``from concord import cli`` imports concord.cli
                    yield node.lineno, f"{node.module}.{alias.name}"


def _files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _concord_imports(path: Path) -> Iterator[tuple[int, str]]:
    for line, module in _imports(path):
        if module == "concord" or module.startswith("concord."):
            if module != "concord":
                yield line, module


def _stage_of(module: str) -> int | None:
    for rank, members in enumerate(STAGES):
        if _within(module, members):
            return rank
    return None


def _known(module: str) -> bool:
    return (REPO / module.replace(".", "/")).with_suffix(".py").is_file() or (
        REPO / module.replace(".", "/")
    ).is_dir()


def test_connectors_import_only_the_contracts_layer_of_core() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _files("connectors")
        for line, module in _concord_imports(path)
        if _known(module) and not _within(module, CONTRACTS_LAYER)
    ]
    assert found == []


def test_the_contracts_layer_imports_nothing_else_of_concord() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _files("concord")
        if _within(_module_name(path), CONTRACTS_LAYER)
        for line, module in _concord_imports(path)
        if _known(module) and not _within(module, CONTRACTS_LAYER)
    ]
    assert found == []


@pytest.mark.parametrize("forbidden", ["connectors", "sandbox", "bench", "tests", "dags"])
def test_core_never_imports_connectors_the_sandbox_benchmarks_or_tests(forbidden: str) -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _files("concord")
        for line, module in _imports(path)
        if module == forbidden or module.startswith(forbidden + ".")
    ]
    assert found == []


def test_the_dag_imports_only_concord_airflow_and_concord_config() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _files("dags")
        for line, module in _concord_imports(path)
        if _known(module) and not _within(module, ("concord.airflow", "concord.config"))
    ]
    assert found == []


def test_stages_import_only_core_and_earlier_stages() -> None:
    found: list[str] = []
    for path in _files("concord"):
        me = _module_name(path)
        rank = _stage_of(me)
        runner = _within(me, RUNNERS)
        if runner or me == "concord.pipeline":
            continue
        for line, module in _concord_imports(path):
            if not _known(module):
                continue
            where = f"{path.relative_to(REPO)}:{line} imports {module}"
            if _within(module, RUNNERS):
                found.append(where + " (a runner)")
                continue
            other = _stage_of(module)
            if other is None:
                continue
            if rank is None:
                found.append(where + " (core importing a stage)")
            elif other > rank:
                found.append(where + " (a later stage)")
    assert found == []


def test_every_concord_module_is_placed_in_a_layer() -> None:
    unplaced = [
        me
        for path in _files("concord")
        if not _within(me := _module_name(path), (*CORE, *RUNNERS, "concord.migrations"))
        and _stage_of(me) is None
        and me not in ("concord", "concord.pipeline")
    ]
    assert unplaced == []


def test_the_wheel_ships_concord_and_connectors_but_no_sandbox() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(packages) == ["concord*", "connectors*"]
    assert project["project"]["scripts"]["concord"] == "concord.cli.app:app"
