"""docker-compose.yml checked without a Docker engine: it validates against the Compose
Specification's JSON schema, runs every Airflow component on the CeleryExecutor, and every file
and environment variable it (and the concord config inside it) refers to exists."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
# Vendored (unmodified, Apache-2.0: NOTICE and LICENSE beside it) so a clean clone has it.
SCHEMA = Path(__file__).resolve().parent / "schema" / "compose-spec.json"
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-[^}]*)?\}")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (REPO / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(compose_text)
    return data


def _config_variables(node: Any) -> set[str]:
    """Variables the concord config needs: ``${VAR}`` without a default and ``{env: VAR}``."""
    if isinstance(node, str):
        return {m.group(1) for m in VAR.finditer(node) if not m.group(2)}
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        for value in node.values():
            found |= _config_variables(value)
        return found
    if isinstance(node, list):
        return set().union(*(_config_variables(v) for v in node)) if node else set()
    return set()


def _airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in compose["services"].items() if k.startswith("airflow-")}


def test_compose_file_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    if not SCHEMA.is_file():
        # In CI (`CI` set, as `.ci/run` does) a missing schema is a failure, never a quiet skip.
        if os.environ.get("CI"):
            pytest.fail(f"compose schema missing at {SCHEMA}")
        pytest.skip(f"compose schema not found at {SCHEMA}")
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads(SCHEMA.read_text())
    # The spec names draft-07 without the trailing '#', which jsonschema does not recognise.
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert errors == []


def test_every_airflow_component_runs_on_celery_with_postgres_and_redis(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "sandbox-erp", "sandbox-crm"} <= set(services)
    commands = {name: str(s.get("command")) for name, s in _airflow_services(compose).items()}
    for component in ("api-server", "scheduler", "dag-processor", "triggerer", "celery worker"):
        assert component in commands.values(), component
    for name, service in _airflow_services(compose).items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["CONCORD_STORE_URL"].startswith("postgresql://"), name
        assert service["build"]["dockerfile"] == "Dockerfile", name
    assert services["airflow-worker"]["deploy"]["replicas"] >= 2
    assert "python" in services["sandbox-erp"]["entrypoint"]
    every_interface = "0.0.0.0"  # noqa: S104 - inside its container, published by compose
    assert services["sandbox-erp"]["command"][:3] == ["erp", "--host", every_interface]
    assert services["sandbox-crm"]["command"][:3] == ["crm", "--host", every_interface]


def test_every_file_the_compose_file_and_dockerfile_refer_to_exists(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source}"
    copied = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", (REPO / "Dockerfile").read_text(), re.M)
    assert copied
    for line in copied:
        for source in line.split():
            assert (REPO / source).exists(), f"Dockerfile COPY {source}"


def test_every_variable_has_a_value_and_the_config_finds_what_it_needs(
    compose: dict[str, Any], compose_text: str
) -> None:
    no_default = [m.group(1) for m in VAR.finditer(compose_text) if not m.group(2)]
    assert no_default == [], "variables without a default (need a .env): " + ", ".join(no_default)
    needed = _config_variables(yaml.safe_load((REPO / "concord.yaml").read_text()))
    needed |= {"CONCORD_CONFIG", "CONCORD_STORE_URL"}
    for name, service in _airflow_services(compose).items():
        missing = needed - set(service["environment"])
        assert not missing, f"{name} lacks {sorted(missing)}"
    mounted = {
        v.split(":")[1] for v in compose["x-airflow-common"]["volumes"] if v.startswith("./")
    }
    config_in_container = compose["x-airflow-common"]["environment"]["CONCORD_CONFIG"]
    dags_in_container = compose["x-airflow-common"]["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
    assert {config_in_container, dags_in_container} <= mounted
