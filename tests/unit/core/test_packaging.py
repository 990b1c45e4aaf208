"""Packaging: an SPDX licence with a pinned build backend, a slim default install for the CLI
and the demo (Airflow, dev tools and charts are extras), every dependency pinned in
constraints.txt, and a Dockerfile that installs with those pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_licence_is_an_spdx_expression_with_its_file() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert "Apache License" in (REPO / "LICENSE").read_text()


def test_the_build_backend_is_pinned_exactly() -> None:
    requires = PYPROJECT["build-system"]["requires"]
    assert requires and all("==" in r for r in requires)
    setuptools = next(r for r in requires if _name(r) == "setuptools")
    major = int(setuptools.split("==")[1].split(".")[0])
    assert major >= 77  # PEP 639 licence expressions


def test_the_default_install_is_the_cli_and_the_demo_only() -> None:
    default = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    heavy = {"apache-airflow", "pytest", "mypy", "ruff", "matplotlib", "hypothesis", "celery"}
    assert not default & heavy
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"airflow", "dev", "charts"} <= set(extras)
    assert "apache-airflow" in {_name(r) for r in extras["airflow"]}
    assert "matplotlib" in {_name(r) for r in extras["charts"]}


def test_every_dependency_is_pinned_in_constraints() -> None:
    pinned = {
        _name(line)
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    wanted = [*PYPROJECT["project"]["dependencies"]]
    for group in PYPROJECT["project"]["optional-dependencies"].values():
        wanted += group
    missing = sorted({_name(r) for r in wanted} - pinned)
    assert missing == []


def test_the_dockerfile_installs_with_the_constraints() -> None:
    text = (REPO / "Dockerfile").read_text()
    copy = text.index("constraints.txt")
    install = next(line for line in text.splitlines() if "pip install" in line)
    assert "-c constraints.txt" in install and text.index(install) > copy


def test_make_demo_installs_the_slim_set_and_make_test_the_rest() -> None:
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^demo: \$\(STAMP\)$", make, flags=re.M)
    slim = make[make.index("$(STAMP):") : make.index("$(DEV_STAMP):")]
    assert "-e .\n" in slim and "[" not in slim.split("-e .", 1)[1].split("\n", 1)[0]
    assert "'.[dev,airflow,charts]'" in make
    assert re.search(r"^test: \$\(DEV_STAMP\)", make, flags=re.M)
